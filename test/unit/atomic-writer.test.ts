import assert from 'node:assert/strict';
import { lstat, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readPublished, writeAtomically } from '../../src/driver/atomic-writer.js';

const files = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, Buffer.from(v)]));

describe('atomic writer', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'writer-')); });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('publishes files as symlinks into ..data with mode 0644', async () => {
    assert.equal(writeAtomically(dir, files({ a: 'one', b: 'two' })), true);
    assert.equal(await readFile(join(dir, 'a'), 'utf8'), 'one');
    assert.equal(await readlink(join(dir, 'b')), join('..data', 'b'));
    assert.ok((await lstat(join(dir, '..data'))).isSymbolicLink());
    assert.equal((await stat(join(dir, 'a'))).mode & 0o777, 0o644);
    assert.equal((await stat(join(dir, '..data'))).mode & 0o777, 0o755, 'any user can reach the files');
  });

  it('does not touch anything when the content is unchanged', async () => {
    writeAtomically(dir, files({ a: 'one' }));
    const before = await readlink(join(dir, '..data'));
    assert.equal(writeAtomically(dir, files({ a: 'one' })), false);
    assert.equal(await readlink(join(dir, '..data')), before);
  });

  it('swaps to new content, drops removed files and the old data folder', async () => {
    writeAtomically(dir, files({ a: 'one', gone: 'x' }));
    const first = await readlink(join(dir, '..data'));
    writeAtomically(dir, files({ a: 'uno', added: 'new' }));
    assert.deepEqual(Object.fromEntries([...readPublished(dir)].map(([k, v]) => [k, v.toString()])), { a: 'uno', added: 'new' });
    const entries = await readdir(dir);
    assert.ok(!entries.includes('gone'));
    assert.ok(!entries.includes(first));
    assert.deepEqual(entries.filter((e) => !e.startsWith('..')).sort(), ['a', 'added']);
  });

  it('writes a custom mode', async () => {
    writeAtomically(dir, files({ a: 'one' }), 0o440);
    assert.equal((await stat(join(dir, 'a'))).mode & 0o777, 0o440);
  });
});
