// The CNI configuration file on the host: written whole or not at all, only when its text changes,
// and removed only when it is this agent's (another CNI's file in the same directory is left alone).
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isOwnCniConfigList } from './conflist.js';

/** The file's text, or undefined when there is none. */
async function readIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Writes `text` to `path` unless it is there already; true when it wrote. A temporary file renamed
 * over the old one: a runtime reading the directory sees the old file or the new one, never half of
 * either, and never the temporary one (runtimes read only *.conf, *.conflist and *.json).
 */
export async function writeCniConfigFile(path: string, text: string): Promise<boolean> {
  if ((await readIfPresent(path)) === text) return false;
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

/** Removes the file when it is this agent's; one line per thing removed (see agent/host-cleanup.ts). */
export async function removeCniConfigFile(path: string): Promise<string[]> {
  const text = await readIfPresent(path);
  if (text === undefined || !isOwnCniConfigList(text)) return [];
  await rm(path, { force: true });
  return [path];
}
