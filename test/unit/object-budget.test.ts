// The watch's line splitter keeps no line over the object budget, however the stream is chunked.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { LineSplitter } from '../../src/kube/object-budget.js';

it('splits watch lines under a byte limit, skipping a longer one whole however it is chunked', () => {
  const lines: string[] = [];
  const tooLong: number[] = [];
  const s = new LineSplitter(
    10,
    (l) => lines.push(l.toString()),
    (n) => tooLong.push(n),
  );
  for (const chunk of ['{"a":1}\n{"b"', ':2}\n', 'x'.repeat(6), 'y'.repeat(6), 'z\n', '0123456789\n', '\n', '{"c":3}'])
    s.push(Buffer.from(chunk));
  s.push(Buffer.from('\n'));
  assert.deepEqual(lines, ['{"a":1}', '{"b":2}', '0123456789', '{"c":3}']);
  assert.deepEqual(tooLong, [13]);
});
