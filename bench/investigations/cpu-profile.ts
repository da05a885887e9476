// Summarises a V8 CPU profile (.cpuprofile from `node --cpu-prof`) of the bundled driver:
// time by activity (what it was spent for), self time by the package or source file each
// function comes from (through the bundle's source map), and the top functions. Usage: node dist/bench/investigations/cpu-profile.js <file> [window ms: the busiest such window only] [bundle]
import { readFileSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { resolve } from 'node:path';

const executable = resolve(import.meta.dirname, '../../cce-secrets-manager.mjs');

/**
 * What a sample was spent for: the first of these that a frame matches, from the sampled
 * function up its stack. Asynchronous continuations have short stacks, so Node's HTTP and
 * TLS layers, without an own frame above them, have a line of their own.
 */
const ACTIVITIES: [RegExp, string][] = [
  [/^\(\((garbage collector|idle|program)\)\)$/, ''],
  [/winston|logform|readable-stream|src\/log\.ts/, 'logging'],
  [/@grpc\/|node:internal\/http2|src\/grpc\//, "kubelet's gRPC calls (grpc-js, HTTP/2)"],
  [/client-node|node-fetch|src\/kube\//, 'API server calls (client-node)'],
  [/src\/provider\//, 'CSMS calls'],
  [/node:(_http_|https|_tls_|tls|net|internal\/(tls|http|net|stream_base))/, "Node's HTTP and TLS (either client)"],
  [/src\/driver\/(mounter|atomic-writer|target-path)/, 'the tmpfs and its files'],
  [/src\//, 'other code of ours'],
];

interface Node {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Bundle position → the package or source file it came from, through the bundle's source map. */
function moduleOfPosition(mapPath: string): (line: number, column: number) => string {
  const map = new SourceMap(JSON.parse(readFileSync(mapPath, 'utf8')) as SourceMapPayload);
  return (line, column) => {
    const entry = map.findEntry(line, column) as { originalSource?: string };
    const source = entry.originalSource ?? '';
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(source);
    if (pkg) return pkg[1];
    const own = /(src\/.*)$/.exec(source);
    return own ? own[1] : source || '(unmapped)';
  };
}

/** The samples [from, to) of the `windowMs` with the most non-idle time (the burst); all when 0. */
function busiestWindow(profile: Profile, byId: Map<number, Node>, windowMs: number): [number, number] {
  if (!windowMs) return [0, profile.samples.length];
  const at: number[] = [];
  let t = 0;
  for (const d of profile.timeDeltas) at.push((t += d / 1000));
  const busy = profile.samples.map((id, i) =>
    byId.get(id)!.callFrame.functionName === '(idle)' ? 0 : profile.timeDeltas[i] / 1000,
  );
  let best: [number, number] = [0, 0];
  let bestBusy = -1;
  let sum = 0;
  for (let lo = 0, hi = 0; hi < at.length; hi++) {
    sum += busy[hi];
    while (at[hi] - at[lo] > windowMs) sum -= busy[lo++];
    if (sum > bestBusy) [bestBusy, best] = [sum, [lo, hi + 1]];
  }
  return best;
}

function main(file: string, bundlePath: string, windowMs: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMs = new Map<number, number>();
  const [from, to] = busiestWindow(profile, byId, windowMs);
  profile.samples.forEach((id, i) => {
    if (i >= from && i < to) selfMs.set(id, (selfMs.get(id) ?? 0) + profile.timeDeltas[i] / 1000);
  });
  const moduleOf = moduleOfPosition(`${bundlePath}.map`);
  const byModule = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const byOwnCaller = new Map<string, number>();
  const byActivity = new Map<string, number>();
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const whereOf = (n: Node) => {
    const { functionName, url, lineNumber, columnNumber } = n.callFrame;
    if (url.endsWith('.mjs') && url.includes('cce-secrets-manager')) return moduleOf(lineNumber, columnNumber);
    if (url.startsWith('node:')) return url;
    return url === '' ? `(${functionName || 'vm'})` : url;
  };
  let total = 0;
  for (const [id, ms] of selfMs) {
    const node = byId.get(id)!;
    const where = whereOf(node);
    byModule.set(where, (byModule.get(where) ?? 0) + ms);
    const fn = `${node.callFrame.functionName || '(anonymous)'} ${where}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    // Up the stack from the sampled function: the nearest function of our own source, and
    // the first frame that says what the time was spent for.
    const up = (pick: (w: string, n: Node) => string | undefined): string | undefined => {
      for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
        const found = pick(whereOf(byId.get(at)!), byId.get(at)!);
        if (found) return found;
      }
      return undefined;
    };
    const own =
      up((w, n) => (w.startsWith('src/') ? `${n.callFrame.functionName || '(anonymous)'} ${w}` : undefined)) ??
      `(no frame of src/) ${where}`;
    byOwnCaller.set(own, (byOwnCaller.get(own) ?? 0) + ms);
    const activity =
      up((w) => ACTIVITIES.map(([pattern, name]) => (pattern.test(w) ? name || w : undefined)).find(Boolean)) ??
      '(the rest: promises, timers, streams, Node internals)';
    byActivity.set(activity, (byActivity.get(activity) ?? 0) + ms);
    total += ms;
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `  ${v.toFixed(0).padStart(6)} ms  ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
  console.log(`profile ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s, ${total.toFixed(0)} ms sampled`);
  console.log('by activity (the first frame up the stack that says what for):');
  console.log(top(byActivity, ACTIVITIES.length + 3).join('\n'));
  console.log('self time by module:');
  console.log(top(byModule, 25).join('\n'));
  console.log('top functions (self):');
  console.log(top(byFunction, 30).join('\n'));
  console.log('by the nearest function of our own source on the stack (self time of everything it called):');
  console.log(top(byOwnCaller, 30).join('\n'));
}

main(process.argv[2], process.argv[4] ?? executable, Number(process.argv[3] ?? 0));
