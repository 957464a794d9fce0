// Where a process's CPU went, from V8 .cpuprofile files (bench/agent-cpu-profile.mjs writes several
// per run: one per stretch between the addon's probes): self and inclusive time per function, and self
// time per file, summed over the files.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface ProfileSummary {
  /** Milliseconds sampled, idle included. */
  readonly totalMs: number;
  readonly idleMs: number;
  /** [function, ms], largest first. */
  readonly self: readonly (readonly [string, number])[];
  readonly inclusive: readonly (readonly [string, number])[];
  readonly files: readonly (readonly [string, number])[];
}

/** The profiles in `dir` whose names start with `prefix`, summed. */
export function summariseProfiles(dir: string, prefix = ''): ProfileSummary {
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const files = new Map<string, number>();
  let totalMs = 0;
  for (const file of readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.cpuprofile')).sort()) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const samples = profile.samples ?? [];
    const deltas = profile.timeDeltas ?? [];
    // A sample's time is the delta to the next sample (the first delta is from the profile's start).
    for (let i = 0; i < samples.length; i++) {
      const ms = (deltas[i + 1] ?? 0) / 1000;
      totalMs += ms;
      const leaf = byId.get(samples[i]!)!;
      add(self, label(leaf.callFrame), ms);
      add(files, fileOf(leaf.callFrame), ms);
      const seen = new Set<string>();
      for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) seen.add(label(byId.get(id)!.callFrame));
      for (const key of seen) add(inclusive, key, ms);
    }
  }
  const top = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  return { totalMs, idleMs: self.get('(idle)') ?? 0, self: top(self), inclusive: top(inclusive), files: top(files) };
}

function add(m: Map<string, number>, key: string, ms: number): void {
  m.set(key, (m.get(key) ?? 0) + ms);
}

function fileOf(frame: CallFrame): string {
  if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  return frame.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
}

function label(frame: CallFrame): string {
  if (frame.url === '') return frame.functionName;
  return `${frame.functionName || '(anonymous)'} ${fileOf(frame)}:${frame.lineNumber + 1}`;
}

/** The summary as lines of text: the `rows` largest of each table. */
export function formatSummary(s: ProfileSummary, rows = 25): string {
  const table = (title: string, entries: readonly (readonly [string, number])[]): string =>
    [`${title}:`, ...entries.slice(0, rows).map(([k, ms]) => `  ${ms.toFixed(0).padStart(7)} ms  ${k}`)].join('\n');
  return [
    `sampled ${s.totalMs.toFixed(0)} ms, of which idle ${s.idleMs.toFixed(0)} ms`,
    table('self time by file', s.files),
    table('self time by function', s.self),
    table('inclusive time by function', s.inclusive),
  ].join('\n');
}

// Run alone: node --import tsx bench/cpu-profiles.ts DIR [PREFIX]
if (process.argv[1]?.endsWith('cpu-profiles.ts') === true) {
  process.stdout.write(`${formatSummary(summariseProfiles(process.argv[2] ?? '.', process.argv[3]))}\n`);
}
