// Builds the executable we ship: src/main.ts and every runtime dependency in one ES module,
// but koffi, whose native binary cannot be bundled: it ships as node_modules/koffi beside it.
// Why a bundle: @kubernetes/client-node loads generated code for every API group
// when imported, and V8 keeps all of that source in the heap. Tree-shaking keeps only what
// the driver calls, which cuts the driver's memory (see BENCHMARKS.md). Tests run this
// file, so what is tested is what ships.
import { chmodSync } from 'node:fs';
import { build } from 'esbuild';

const outfile = 'dist/cce-secrets-manager.mjs';
await build({
  entryPoints: ['src/main.ts'],
  outfile,
  bundle: true,
  external: ['koffi'],
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Whitespace and syntax only: names stay readable in stack traces and error names.
  minifyWhitespace: true,
  minifySyntax: true,
  keepNames: true,
  legalComments: 'none',
  sourcemap: 'linked', // read only under `node --enable-source-maps`
  // CommonJS dependencies call require() for Node's built-in modules.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
