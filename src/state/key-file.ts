// The node's WireGuard private key on disk: directory 0700, file 0600, never logged.
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
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

/** Writes a new key; refuses to overwrite unless `force`, so a node never silently changes identity. */
export async function writeNewKeyFile(path: string, force = false): Promise<WireGuardKey> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await chmod(dirname(path), 0o700);
  const key = generatePrivateKey();
  // 'wx' fails if the file exists; the mode applies at creation so the key is never world-readable.
  const file = await open(path, force ? 'w' : 'wx', 0o600).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'EEXIST') throw new KeyFileError(`${path} already exists (use --force to replace it)`);
    throw err;
  });
  try {
    await file.chmod(0o600);
    await file.writeFile(`${key}\n`);
  } finally {
    await file.close();
  }
  return key;
}

/** The agent's start-up: reuse the key if there is one, else create it. */
export async function loadOrCreateKeyFile(path: string): Promise<WireGuardKey> {
  try {
    return await readKeyFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return writeNewKeyFile(path);
  }
}
