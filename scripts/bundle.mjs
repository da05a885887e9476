// Builds the executable we ship: src/main.ts and every runtime dependency in one ES module,
// but koffi, whose native binary cannot be bundled: it ships as node_modules/koffi beside it.
// Why a bundle: @kubernetes/client-node loads generated code for every API group
// when imported, and V8 keeps all of that source in the heap. Tree-shaking keeps only what
// the driver calls, which cuts the driver's memory (see BENCHMARKS.md). Tests run this
// file, so what is tested is what ships.
import { chmodSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { build } from 'esbuild';

/**
 * client-node's generated model classes (about 780, each with its attribute table) are all
 * loaded at start, only so that ObjectSerializer can rename and convert fields. The JSON the
 * API server sends already has the fields' names, and watch events already reach us as
 * plain JSON, so the driver reads plain objects everywhere: each model file becomes an empty
 * class and ObjectSerializer's type table is emptied, which makes it pass objects through
 * as they are (its own rule for types it does not know). Less code in the heap and no walk
 * over every field of every Pod (BENCHMARKS.md); the API classes, the kubeconfig and
 * authentication handling, the watch and the HTTP layer stay client-node's own.
 */
/**
 * Dependencies of dependencies that the driver never runs, replaced by an empty module so
 * they are neither in the bundle nor in the heap: node-fetch falls back to whatwg-url (and
 * its Unicode tables) only where Node has no URL; client-node's `cp` (tar-fs) and its
 * exec/attach/port-forward WebSockets (isomorphic-ws) are never called.
 */
const NEVER_RUN = ['whatwg-url', 'tar-fs', 'isomorphic-ws'];
const neverRun = {
  name: 'never-run-dependencies',
  setup(b) {
    const filter = new RegExp(`^(${NEVER_RUN.join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'never-run' }));
    // Imported at the top of modules we load, so the stand-in must load; it offers nothing.
    b.onLoad({ filter: /.*/, namespace: 'never-run' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

const plainModels = {
  name: 'client-node-plain-models',
  setup(b) {
    const models = /@kubernetes\/client-node\/dist\/gen\/models\/([A-Za-z0-9]+)\.js$/;
    b.onLoad({ filter: models }, (args) => {
      const name = basename(args.path, '.js');
      if (name === 'all') return undefined;
      if (name !== 'ObjectSerializer') return { contents: `export class ${name} {}\n`, loader: 'js' };
      const source = readFileSync(args.path, 'utf8');
      const trimmed = source
        .replace(/^export \* from .*$/gm, '')
        .replace(/^import \{ \w+ \} from '\.\.\/models\/.*$/gm, '')
        .replace(/let typeMap = \{[\s\S]*?\n\};/, 'let typeMap = {};');
      if (!/let typeMap = \{\};/.test(trimmed))
        throw new Error('client-node ObjectSerializer.js changed: update scripts/bundle.mjs');
      return { contents: trimmed, loader: 'js' };
    });
  },
};

const outfile = process.env.BUNDLE_OUT ?? 'dist/cce-secrets-manager.mjs';
const result = await build({
  entryPoints: ['src/main.ts'],
  outfile,
  bundle: true,
  external: ['koffi'],
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // V8 keeps the whole source in the heap, so it is minified; keepNames keeps function and
  // class names, so stack traces and error names still read (the source map has the rest).
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: true,
  keepNames: true,
  legalComments: 'none',
  sourcemap: 'linked', // read only under `node --enable-source-maps`
  // CommonJS dependencies call require() for Node's built-in modules.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
  plugins: [plainModels, neverRun],
  metafile: Boolean(process.env.BUNDLE_META),
});
chmodSync(outfile, 0o755);
if (process.env.BUNDLE_META) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(process.env.BUNDLE_META, JSON.stringify(result.metafile));
}
