// A small text file other processes read while it changes (a CNI configuration, an agent's shared
// annotations): replaced whole through a rename, never seen half written, and only when its text
// changes.
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The file's text, or undefined when there is none. */
export async function readTextIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Writes `text` to `path` (0644, its directory made 0755 when missing) unless it is there already;
 * true when it wrote. The temporary file is dot-prefixed and ends in `.tmp`, so readers that pick
 * files by suffix (*.conflist, *.json) never take it.
 */
export async function replaceTextFile(path: string, text: string): Promise<boolean> {
  if ((await readTextIfPresent(path)) === text) return false;
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    await writeFile(temporary, text, { mode: 0o644 });
    await chmod(temporary, 0o644); // the umask may have taken bits away
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
  return true;
}
