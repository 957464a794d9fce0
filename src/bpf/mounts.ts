// Where the kernel's cgroup v2 hierarchy and bpffs are mounted, read from /proc/mounts: machines
// differ (/sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones), so never assume.
import { mkdirSync, readFileSync, statfsSync } from 'node:fs';
import { runCommand } from '../host/command.js';

export interface Mount {
  readonly source: string;
  readonly target: string;
  readonly fstype: string;
  readonly options: readonly string[];
}

const BPF_FS_MAGIC = 0xcafe4a11;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** /proc/mounts lines; paths have spaces and the like as octal escapes (\040). */
export function parseMounts(text: string): Mount[] {
  const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return text
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields.length >= 4)
    .map(([source = '', target = '', fstype = '', options = '']) => ({
      source: unescape(source),
      target: unescape(target),
      fstype,
      options: options.split(','),
    }));
}

function mounts(): Mount[] {
  return parseMounts(readFileSync('/proc/mounts', 'utf8'));
}

/** The first cgroup2 mount point, undefined when cgroup v2 is not mounted. */
export function findCgroup2Mount(): string | undefined {
  return mounts().find((m) => m.fstype === 'cgroup2')?.target;
}

/** The first bpffs mount point (usually /sys/fs/bpf), undefined when there is none. */
export function findBpffsMount(): string | undefined {
  return mounts().find((m) => m.fstype === 'bpf')?.target;
}

export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Whether `path` is a directory of a cgroup v2 hierarchy (where socket programs can attach). */
export function isCgroup2(path: string): boolean {
  try {
    return statfsSync(path).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/** Makes `path` a bpffs mount unless it is one already (systemd usually mounts /sys/fs/bpf; containers may not). */
export async function ensureBpffs(path: string): Promise<void> {
  if (isBpffs(path)) return;
  mkdirSync(path, { recursive: true });
  await runCommand('mount', ['-t', 'bpf', 'bpf', path]);
}
