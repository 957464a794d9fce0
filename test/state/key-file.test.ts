import assert from 'node:assert/strict';
import { chmod, lstat, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadOrCreateKeyFile, readKeyFile, writeNewKeyFile } from '../../src/state/key-file.js';

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-key-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a key is created 0600 in a 0700 directory and reused on the next start', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'state', 'key');
    const first = await loadOrCreateKeyFile(path);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'state'))).mode & 0o777, 0o700);
    assert.equal(await loadOrCreateKeyFile(path), first);
  }));

test('an existing key is never replaced without force', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'key');
    const first = await writeNewKeyFile(path);
    await assert.rejects(writeNewKeyFile(path), /already exists/);
    assert.equal(await readKeyFile(path), first);
    assert.notEqual(await writeNewKeyFile(path, true), first);
  }));

test('a key readable by others or malformed is refused', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'key');
    await writeNewKeyFile(path);
    await chmod(path, 0o644);
    await assert.rejects(readKeyFile(path), /readable by others/);
    await writeFile(path, 'garbage', { mode: 0o600 });
    await chmod(path, 0o600);
    await assert.rejects(readKeyFile(path), /not a WireGuard key/);
  }));

test('--force replaces a symlink at the key path, never the file it points to; no temporary file stays', () =>
  withTempDir(async (dir) => {
    const target = join(dir, 'elsewhere');
    await writeFile(target, 'not yours\n');
    const path = join(dir, 'key');
    await symlink(target, path);
    await assert.rejects(writeNewKeyFile(path), /already exists/);
    const key = await writeNewKeyFile(path, true);
    assert.equal(await readFile(target, 'utf8'), 'not yours\n');
    assert.ok((await lstat(path)).isFile());
    assert.equal(await readKeyFile(path), key);
    assert.deepEqual((await readdir(dir)).sort(), ['elsewhere', 'key']);
  }));

test('an empty key file (a write that never completed) is replaced at start; a malformed one is not', () =>
  withTempDir(async (dir) => {
    const path = join(dir, 'key');
    await writeFile(path, '', { mode: 0o600 });
    const key = await loadOrCreateKeyFile(path);
    assert.equal(await readKeyFile(path), key);
    await writeFile(path, 'garbage', { mode: 0o600 });
    await assert.rejects(loadOrCreateKeyFile(path), /not a WireGuard key/);
  }));
