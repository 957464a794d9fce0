// The node's WireGuard private key on disk: directory 0700, file 0600, never logged.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type WireGuardKey, generatePrivateKey, parseKey } from '../model/key.js';
import { ParseError } from '../model/ip.js';

export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
}

export async function readKeyFile(path: string): Promise<WireGuardKey> {
  const mode = (await stat(path)).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new KeyFileError(`${path}: private key is readable by others (mode ${mode.toString(8)}); want 0600`);
  }
  try {
    return parseKey(await readFile(path, 'utf8'));
  } catch (err) {
    if (err instanceof ParseError) throw new KeyFileError(`${path}: ${err.message}`);
    throw err;
  }
}

/**
 * Writes a new key; refuses to overwrite unless `force`, so a node never silently changes identity.
 * Atomic: the key goes to a temporary file (created 0600, never through a symlink), is synced, and is
 * then linked (no `force`: fails if the name exists) or renamed (replacing the name itself, never a
 * symlink's target) into place, so a crash leaves the old key or the new one, never a partial file.
 */
export async function writeNewKeyFile(path: string, force = false): Promise<WireGuardKey> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const key = generatePrivateKey();
  const temporary = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const file = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    try {
      await file.writeFile(`${key}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    if (force) await rename(temporary, path);
    else {
      await link(temporary, path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') throw new KeyFileError(`${path} already exists (use --force to replace it)`);
        throw err;
      });
    }
  } finally {
    await rm(temporary, { force: true });
  }
  await syncDirectory(dir);
  return key;
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The agent's start-up: reuse the key if there is one, else create it. */
export async function loadOrCreateKeyFile(path: string): Promise<WireGuardKey> {
  try {
    return await readKeyFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return writeNewKeyFile(path);
    // An empty file is a write that never completed (older versions wrote in place): no key was
    // ever read from it, so no peer knows one; anything else unreadable is the operator's to fix.
    if (err instanceof KeyFileError && (await stat(path)).size === 0) return writeNewKeyFile(path, true);
    throw err;
  }
}
