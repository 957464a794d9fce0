// Rebuilding pinned maps whose layout changed, without a moment in which services fail. libbpf
// re-uses a pinned map only when type, key and value sizes, max_entries and flags all match; a new
// agent whose maps differ cannot load its programs over the old pins. So it builds the new maps
// beside them, pinned in <pinDir>/STAGING_DIR: the old programs keep serving the old maps while the
// agent fills the new ones with the full service map, then every program is swapped for one over
// the new maps (program-swap.ts), and only then do the staged pins replace the old ones (a rename
// on bpffs replaces the target in one step). Maps only the programs write (affinity, socket
// reverse translation, NodePort conntrack) are copied over when their key and value sizes allow:
// once before the swap, and once after for what the old programs added in between.
import { existsSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BpfMap, BpfError, MapUpdate, openPinnedLink, openPinnedMap, programInfoById, unpin } from '../../bpf/index.js';
import { PIN_LINKS_DIR } from './codec.js';

/** Staged maps: <pinDir>/STAGING_DIR/<map name>, until they replace <pinDir>/<map name>. */
export const STAGING_DIR = 'next';

export function stagingDir(pinDir: string): string {
  return join(pinDir, STAGING_DIR);
}

/** A map as an object declares it or a pin holds it: what decides whether libbpf can re-use the pin. */
export interface MapLayout {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
}

/** How `pinned` differs from `wanted` (empty: the pin can be re-used), e.g. ['max_entries 65536 → 131072']. */
export function layoutDifferences(pinned: MapLayout, wanted: MapLayout): string[] {
  const out: string[] = [];
  const field = (what: string, a: number, b: number): void => {
    if (a !== b) out.push(`${what} ${a} → ${b}`);
  };
  field('type', pinned.type, wanted.type);
  field('key size', pinned.keySize, wanted.keySize);
  field('value size', pinned.valueSize, wanted.valueSize);
  field('max_entries', pinned.maxEntries, wanted.maxEntries);
  field('flags', pinned.flags, wanted.flags);
  return out;
}

/**
 * The maps of `wanted` whose pin in `pinDir` holds another layout, with what differs. Maps without
 * a pin are not listed (they are simply created).
 */
export function changedLayouts(pinDir: string, wanted: readonly MapLayout[]): Map<string, string[]> {
  const changed = new Map<string, string[]>();
  for (const map of wanted) {
    const path = join(pinDir, map.name);
    if (!existsSync(path)) continue;
    const pinned = openPinnedMap(path);
    try {
      const differences = layoutDifferences(pinned, map);
      if (differences.length > 0) changed.set(map.name, differences);
    } finally {
      pinned.close();
    }
  }
  return changed;
}

/**
 * Copies the entries of `from` into `to` (same key and value sizes); with `onlyMissing`, keys `to`
 * already has keep their value (the new programs wrote them: they are newer). Returns the entries
 * written. Entries that vanish while copying (LRU eviction) are skipped.
 */
function copyEntries(from: BpfMap, to: BpfMap, options: { readonly onlyMissing?: boolean } = {}): number {
  if (from.keySize !== to.keySize || from.valueBytes !== to.valueBytes) return 0;
  let written = 0;
  const flags = options.onlyMissing ? MapUpdate.noExist : MapUpdate.any;
  for (const [key, value] of from.entries()) {
    try {
      to.update(key, value, flags);
      written++;
    } catch (error) {
      if (error instanceof BpfError && error.code === 'EEXIST') continue;
      // A full map keeps what fitted: the programs make new entries as flows come.
      if (error instanceof BpfError && error.code === 'E2BIG') break;
      throw error;
    }
  }
  return written;
}

/** copyEntries from the map pinned at <pinDir>/<name> into its staged successor. */
export function copyToStaged(pinDir: string, name: string, options: { readonly onlyMissing?: boolean } = {}): number {
  const old = openPinnedMap(join(pinDir, name));
  try {
    const next = openPinnedMap(join(stagingDir(pinDir), name));
    try {
      return copyEntries(old, next, options);
    } finally {
      next.close();
    }
  } finally {
    old.close();
  }
}

/** Moves every staged pin over its old one and removes the staging directory. Returns the map names. */
export function promoteStagedPins(pinDir: string): string[] {
  const dir = stagingDir(pinDir);
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir);
  for (const name of names) renameSync(join(dir, name), join(pinDir, name));
  rmdirSync(dir);
  return names;
}

/** Removes the staging directory and its pins (maps a running program uses live on in it). */
export function discardStaging(pinDir: string): string[] {
  const dir = stagingDir(pinDir);
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir);
  for (const name of names) unpin(join(dir, name));
  rmdirSync(dir);
  return names;
}

/**
 * A staging directory an earlier agent left (it stopped between building the maps and promoting
 * them): if a pinned link's program already uses a staged map, the swap had begun and the staged
 * pins are the live ones, so they are promoted; otherwise the old programs still serve the old
 * maps, and the staged ones go. Returns what was done, undefined when there was nothing.
 */
export function settleStaging(pinDir: string): { readonly action: 'promoted' | 'discarded'; readonly maps: readonly string[] } | undefined {
  const dir = stagingDir(pinDir);
  if (!existsSync(dir)) return undefined;
  const staged = new Set<number>();
  for (const name of readdirSync(dir)) {
    try {
      const map = openPinnedMap(join(dir, name));
      staged.add(map.id);
      map.close();
    } catch {
      // Not a map: it goes with the directory.
    }
  }
  const linksDir = join(pinDir, PIN_LINKS_DIR);
  const links = existsSync(linksDir) ? readdirSync(linksDir) : [];
  const inUse = links.some((name) => {
    try {
      const link = openPinnedLink(join(linksDir, name));
      try {
        return programInfoById(link.info().progId).mapIds.some((id) => staged.has(id));
      } finally {
        link.close();
      }
    } catch {
      return false;
    }
  });
  return inUse ? { action: 'promoted', maps: promoteStagedPins(pinDir) } : { action: 'discarded', maps: discardStaging(pinDir) };
}
