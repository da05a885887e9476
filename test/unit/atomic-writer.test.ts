// The atomic writer on a plain folder: swaps, leftovers, damaged volumes and names at the byte limit.
import assert from 'node:assert/strict';
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, it } from 'node:test';
import { readPublished, writeAtomically } from '../../src/driver/atomic-writer.js';

const files = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, Buffer.from(v)]));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'writer-'));
});
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
  assert.deepEqual(Object.fromEntries([...readPublished(dir)].map(([k, v]) => [k, v.toString()])), {
    a: 'uno',
    added: 'new',
  });
  const entries = await readdir(dir);
  assert.ok(!entries.includes('gone'));
  assert.ok(!entries.includes(first));
  assert.deepEqual(entries.filter((e) => !e.startsWith('..')).sort(), ['a', 'added']);
});

it('writes each file with its own mode, exactly (the umask takes nothing away)', async () => {
  writeAtomically(dir, files({ a: 'one', b: 'two', c: 'three' }), {
    modes: new Map([
      ['a', 0o440],
      ['b', 0o664],
    ]),
  });
  assert.equal((await stat(join(dir, 'a'))).mode & 0o777, 0o440);
  assert.equal((await stat(join(dir, 'b'))).mode & 0o777, 0o664);
  assert.equal((await stat(join(dir, 'c'))).mode & 0o777, 0o644, 'the default');
});

it('rewrites files whose mode or group changed, though their bytes did not', async () => {
  writeAtomically(dir, files({ a: 'one' }));
  assert.equal(writeAtomically(dir, files({ a: 'one' }), { modes: new Map([['a', 0o400]]) }), true);
  assert.equal((await stat(join(dir, 'a'))).mode & 0o777, 0o400);
  assert.equal(writeAtomically(dir, files({ a: 'one' }), { modes: new Map([['a', 0o400]]) }), false);
  if (process.getuid?.() === 0) {
    assert.equal(writeAtomically(dir, files({ a: 'one' }), { modes: new Map([['a', 0o440]]), gid: 4321 }), true);
    const st = await stat(join(dir, 'a'));
    assert.equal(st.gid, 4321);
    assert.equal(st.mode & 0o777, 0o440);
  }
});

it('leaves the last good files and no temporary entry behind when a write fails', async () => {
  writeAtomically(dir, files({ a: 'one' }));
  const before = (await readdir(dir)).sort();
  // A name the file system refuses stands for any failure while the new folder is filled.
  assert.throws(() => writeAtomically(dir, files({ a: 'two', ['n'.repeat(300)]: 'x' })), /ENAMETOOLONG/);
  assert.deepEqual((await readdir(dir)).sort(), before);
  assert.equal(await readFile(join(dir, 'a'), 'utf8'), 'one');
});

it('takes a 255-byte file name: the writer adds nothing to it', async () => {
  const name = 'é'.repeat(127) + 'x'; // 255 bytes
  assert.equal(writeAtomically(dir, files({ [name]: 'v' })), true);
  assert.equal(await readFile(join(dir, name), 'utf8'), 'v');
  assert.deepEqual((await readdir(dir)).filter((e) => e.startsWith('..')).length, 2, '..data and its folder only');
});

it('repairs a volume a crash left damaged instead of calling it unchanged', async () => {
  writeAtomically(dir, files({ a: 'one', b: 'two' }));
  await mkdir(join(dir, '..2026_01_01_00_00_00.000.leftover'));
  await writeFile(join(dir, '..2026_01_01_00_00_00.000.leftover', 'a'), 'copy of a secret');
  await symlink('..2026_01_01_00_00_00.000.leftover', join(dir, '..data_tmp'));
  await unlink(join(dir, 'b'));
  assert.equal(writeAtomically(dir, files({ a: 'one', b: 'two' })), true, 'a damaged volume is rewritten');
  assert.equal(await readFile(join(dir, 'b'), 'utf8'), 'two');
  const entries = await readdir(dir);
  assert.deepEqual(
    entries.filter((e) => e.startsWith('..')).length,
    2,
    `only ..data and its folder remain: ${entries.join(', ')}`,
  );
  assert.equal(writeAtomically(dir, files({ a: 'one', b: 'two' })), false, 'and is then unchanged');
});

it('reads nothing through a ..data link that points out of the volume', async () => {
  const outside = await mkdtemp(join(tmpdir(), 'outside-'));
  await writeFile(join(outside, 'token'), 'not ours');
  await symlink(outside, join(dir, '..data'));
  assert.equal(readPublished(dir).size, 0);
  await rm(outside, { recursive: true, force: true });
});

it('publishes files in folders through their first component, and removes a folder no longer written', async () => {
  const first = files({ 'certs/tls.crt': 'crt', 'certs/ca/root.pem': 'ca', top: 'top' });
  assert.equal(writeAtomically(dir, first), true);
  assert.equal(await readlink(join(dir, 'certs')), join('..data', 'certs'));
  assert.equal(await readFile(join(dir, 'certs/ca/root.pem'), 'utf8'), 'ca');
  assert.deepEqual([...readPublished(dir).keys()].sort(), ['certs/ca/root.pem', 'certs/tls.crt', 'top']);
  assert.equal(writeAtomically(dir, first), false, 'unchanged');
  assert.equal(writeAtomically(dir, files({ 'certs/tls.crt': 'crt2' })), true);
  assert.equal(await readFile(join(dir, 'certs/tls.crt'), 'utf8'), 'crt2');
  await assert.rejects(stat(join(dir, 'certs/ca')));
  await assert.rejects(lstat(join(dir, 'top')));
  assert.deepEqual((await readdir(dir)).sort(), ['..data', 'certs', await readlink(join(dir, '..data'))].sort());
});
