// The logger: klog-shaped text and JSON lines, and verbosity levels.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/log.js';

function capture(json: boolean, verbosity = 0) {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return {
    log: createLogger({ json, verbosity, stream, name: 'serve' }),
    lines: () => out.trimEnd().split('\n').filter(Boolean),
  };
}

describe('logger', () => {
  it('writes klog-shaped lines with the command where klog has file:line', async () => {
    const { log, lines } = capture(false);
    log.info('Get secret successfully', { name: 'secret_1', version: 'v1' });
    log.warn("object [secret_1]'s version [v1] doesn't change, read from local");
    await new Promise((r) => setImmediate(r));
    const [a, b] = lines();
    assert.match(
      a,
      /^I\d{4} \d{2}:\d{2}:\d{2}\.\d{6}\s+\d+ serve\] "Get secret successfully" name="secret_1" version="v1"$/,
    );
    assert.match(b, /^W\d{4} .* serve\] object \[secret_1\]'s version \[v1\] doesn't change, read from local$/);
  });

  it('keeps a message with text from outside on one line', async () => {
    const { log, lines } = capture(false);
    log.info(`object [db]'s version [v1\nE1201 00:00:00.000000 1 serve] forged] doesn't change, read from local`);
    await new Promise((r) => setImmediate(r));
    assert.equal(lines().length, 1);
    assert.match(lines()[0], /version \[v1\\nE1201 00:00:00\.000000 1 serve\] forged\]/);
  });

  it('writes JSON lines on request and honours verbosity', async () => {
    const { log, lines } = capture(true, 2);
    log.v(2).info('shown', { target: '/t' });
    log.v(3).info('hidden');
    await new Promise((r) => setImmediate(r));
    assert.equal(lines().length, 1);
    const entry = JSON.parse(lines()[0]);
    assert.deepEqual([entry.level, entry.msg, entry.target], ['info', 'shown', '/t']);
    assert.equal(entry.caller, 'serve');
  });
});
