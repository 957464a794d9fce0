// The BPF objects a test made, told apart from everyone else's on the machine: other test files,
// other agents and benchmarks load and attach programs at the same time, so a machine-wide list of
// links or programs before and after proves nothing. Ownership here is positive evidence only:
// maps pinned in the test's own bpffs directory, programs that use those maps, links to those
// programs or on the test's own cgroup, and objects this process holds open.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openPinnedLink, openPinnedMap } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';

/** Kernel ids of maps, programs and links. */
export interface BpfIds {
  readonly maps: ReadonlySet<number>;
  readonly progs: ReadonlySet<number>;
  readonly links: ReadonlySet<number>;
}

async function bpftoolList<T>(what: 'map' | 'prog' | 'link'): Promise<T[]> {
  return JSON.parse((await runCommand('bpftool', ['-j', what, 'show'])).stdout || '[]') as T[];
}

const BPFFS_PRELOADED = new Set(['maps.debug', 'progs.debug']);

/** Ids of the maps and links pinned anywhere under `dir` (a link pin also names its program). */
export function pinnedIds(dir: string): BpfIds {
  const maps = new Set<number>();
  const progs = new Set<number>();
  const links = new Set<number>();
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      // Pins are regular files; skip anything else (tc links its `ip` directory to `tc`), and the
      // iterators a fresh bpffs mount shows at its root.
      if (!entry.isFile() || (at === dir && BPFFS_PRELOADED.has(entry.name))) continue;
      // A pin is a map or a link; which one only opening it tells.
      try {
        const map = openPinnedMap(path);
        maps.add(map.id);
        map.close();
      } catch {
        const link = openPinnedLink(path);
        const info = link.info();
        links.add(info.id);
        progs.add(info.progId);
        link.close();
      }
    }
  };
  walk(dir);
  return { maps, progs, links };
}

/**
 * The kernel's programs and links that belong to the test: programs using one of `mapIds` (the
 * test's own pinned maps) or named in `progIds`, links to those programs, and cgroup links on one
 * of `cgroups` (the inode of a cgroup v2 directory is its cgroup id).
 */
export async function ownedIds(mine: { maps: Iterable<number>; progs?: Iterable<number>; cgroups?: readonly string[] }): Promise<BpfIds> {
  const maps = new Set(mine.maps);
  const cgroupIds = new Set((mine.cgroups ?? []).map((dir) => statSync(dir).ino));
  const programs = await bpftoolList<{ id: number; map_ids?: number[] }>('prog');
  const progs = new Set([...(mine.progs ?? []), ...programs.filter((p) => (p.map_ids ?? []).some((id) => maps.has(id))).map((p) => p.id)]);
  const links = (await bpftoolList<{ id: number; prog_id: number; cgroup_id?: number }>('link'))
    .filter((l) => progs.has(l.prog_id) || (l.cgroup_id !== undefined && cgroupIds.has(l.cgroup_id)))
    .map((l) => l.id);
  return { maps, progs, links: new Set(links) };
}

/** Which of `ids` the kernel still has (ids are not reused while the kernel runs this long). */
export async function stillThere(ids: BpfIds): Promise<{ maps: number[]; progs: number[]; links: number[] }> {
  const existing = async (what: 'map' | 'prog' | 'link') => new Set((await bpftoolList<{ id: number }>(what)).map((e) => e.id));
  const [maps, progs, links] = [await existing('map'), await existing('prog'), await existing('link')];
  return { maps: [...ids.maps].filter((id) => maps.has(id)), progs: [...ids.progs].filter((id) => progs.has(id)), links: [...ids.links].filter((id) => links.has(id)) };
}

/**
 * The BPF objects this process holds open (from /proc/self/fdinfo): a link or program that a
 * failed start leaks without a pin lives exactly as long as such a file descriptor.
 */
export function heldIds(): BpfIds {
  const maps = new Set<number>();
  const progs = new Set<number>();
  const links = new Set<number>();
  for (const fd of readdirSync('/proc/self/fdinfo')) {
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile (the directory's own fd, among others)
    }
    const field = (name: string) => new RegExp(`^${name}:\\s*(\\d+)$`, 'm').exec(info)?.[1];
    const link = field('link_id');
    const prog = field('prog_id');
    const map = field('map_id');
    if (link !== undefined) links.add(Number(link));
    else if (prog !== undefined) progs.add(Number(prog));
    else if (map !== undefined) maps.add(Number(map));
  }
  return { maps, progs, links };
}

/** The ids in `now` that `before` did not have. */
export function added(before: BpfIds, now: BpfIds): { maps: number[]; progs: number[]; links: number[] } {
  const fresh = (a: ReadonlySet<number>, b: ReadonlySet<number>) => [...b].filter((id) => !a.has(id));
  return { maps: fresh(before.maps, now.maps), progs: fresh(before.progs, now.progs), links: fresh(before.links, now.links) };
}
