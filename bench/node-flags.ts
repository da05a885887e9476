// The driver's Node.js runtime flags as the shipped executable's shebang gives them, read
// from there so that the benches run node exactly as production does; the shebang, the
// image and the chart are pinned to the same flags by test/unit/runtime-flags.test.ts.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const shebang = readFileSync(resolve(import.meta.dirname, '../../src/main.ts'), 'utf8').split('\n')[0];
const words = shebang.replace(/^#!\/usr\/bin\/env -S /, '').split(' ');

/** Environment words of the shebang (MALLOC_ARENA_MAX=2). */
export const DRIVER_NODE_ENV: string[] = words.filter((w) => /^[A-Z_]+=/.test(w));
/** Node's own flags of the shebang (heap sizes, warnings). */
export const DRIVER_NODE_FLAGS: string[] = words.filter((w) => w.startsWith('--'));
