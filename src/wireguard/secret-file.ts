// Handing key material to `wg`, which reads configs and keys only from a path it fopen()s.
//
// `/dev/stdin` does not work from Node: a child's stdin is a socketpair, not a pipe, and opening
// /proc/self/fd/0 of a socket fails with ENXIO ("fopen: No such device or address"). So the text
// goes to a 0600 file in a fresh 0700 directory, on a RAM-backed tmpfs where there is one, and
// both are removed as soon as the command returns.
import { mkdtemp, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TMPFS_MAGIC = 0x01021994;
const CANDIDATES = ['/dev/shm', '/run'];

async function secretDirectoryBase(): Promise<string> {
  for (const dir of CANDIDATES) {
    try {
      if ((await statfs(dir)).type === TMPFS_MAGIC) return dir;
    } catch {
      // Not there (or not readable): try the next one.
    }
  }
  return tmpdir();
}

/** Runs `use` with the path of a private file holding `text`; the file is gone when it settles. */
export async function withSecretFile<T>(text: string, use: (path: string) => Promise<T>): Promise<T> {
  // mkdtemp creates the directory 0700.
  const dir = await mkdtemp(join(await secretDirectoryBase(), 'wirelane-wg-'));
  try {
    const path = join(dir, 'config');
    await writeFile(path, text, { mode: 0o600, flag: 'wx' });
    return await use(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
