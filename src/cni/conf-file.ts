// The CNI configuration file on the host: written whole or not at all, only when its text changes,
// and removed only when it is this agent's (another CNI's file in the same directory is left alone).
import { rm } from 'node:fs/promises';
import { readTextIfPresent, replaceTextFile } from '../host/text-file.js';
import { isOwnCniConfigList } from './conflist.js';

/**
 * Writes `text` to `path` unless it is there already; true when it wrote. A temporary file renamed
 * over the old one: a runtime reading the directory sees the old file or the new one, never half of
 * either, and never the temporary one (runtimes read only *.conf, *.conflist and *.json).
 */
export function writeCniConfigFile(path: string, text: string): Promise<boolean> {
  return replaceTextFile(path, text);
}

/** Removes the file when it is this agent's; one line per thing removed (see agent/host-cleanup.ts). */
export async function removeCniConfigFile(path: string): Promise<string[]> {
  const text = await readTextIfPresent(path);
  if (text === undefined || !isOwnCniConfigList(text)) return [];
  await rm(path, { force: true });
  return [path];
}
