// Turns "desired chains and jumps" plus what is on the host into one iptables-restore --noflush
// input that rewrites only what differs.
//
// How a difference is found: iptables-save does not print a rule the way it was written
// (`-d 10.0.0.1` comes back as `-d 10.0.0.1/32`, `-p tcp --dport 80` as `-p tcp -m tcp --dport 80`,
// comments lose or gain quotes), and re-implementing its canonical form for every match module is a
// losing game. So nothing here normalises. Instead, each owned chain and each group of owned jump
// rules keeps a fingerprint in memory: the rules the agent last wrote, and the lines iptables-save
// printed for them after that write (when it was read since).
//
// Two ways to plan (kube-proxy's KEP-3453, "minimizing iptables-restore"):
// - full, from iptables-save: a chain is up to date when the desired rules equal the ones last
//   written AND iptables-save still prints exactly the lines it printed then. A chain deleted,
//   flushed or edited by someone else therefore no longer matches and is rewritten, and so is one
//   whose printed form was never read. After a restart memory is empty, so the first apply rewrites
//   every chain once (as kube-proxy's first sync does).
// - partial, from memory alone (no iptables-save): a chain is up to date when the desired rules
//   equal the ones last written; chains to delete are the remembered ones no longer desired. The
//   record is trusted; the periodic full plan catches what someone else changed meanwhile.
import { chainKey, type FamilyRules, IPTABLES_TABLES, type JumpRule, renderJump } from './ruleset.js';
import type { SavedRules } from './saved-rules.js';

interface Fingerprint {
  /** The desired rules (or rendered jump lines) joined by newlines. */
  readonly wanted: string;
  /**
   * The desired rules array itself, for chains: a caller that hands over the same array for an
   * unchanged chain (the service proxy keeps unchanged service ports' chains) skips the join.
   */
  readonly rules?: readonly string[];
  /**
   * What iptables-save printed for them after they were written, joined by newlines; undefined
   * after a partial write, until the next full plan reads it.
   */
  readonly saved: string | undefined;
}

/** What one family's chains looked like after the agent's last write. Starts empty. */
export interface FamilyMemory {
  readonly chains: Map<string, Fingerprint>;
  readonly jumps: Map<string, Fingerprint>;
}

export function emptyMemory(): FamilyMemory {
  return { chains: new Map(), jumps: new Map() };
}

export interface ChainRef {
  readonly table: string;
  readonly chain: string;
}

interface Written {
  readonly key: string;
  readonly wanted: string;
  readonly rules?: readonly string[];
  readonly count: number;
}

export interface RestorePlan {
  /** iptables-restore --noflush input; empty when nothing differs. */
  readonly input: string;
  readonly writtenChains: readonly ChainRef[];
  readonly deletedChains: readonly ChainRef[];
  /** Non-owned chains whose owned jump rules are rewritten (deleted and added again). */
  readonly rewrittenJumps: readonly ChainRef[];
  readonly written: { readonly chains: readonly Written[]; readonly jumps: readonly Written[] };
}

interface TableSection {
  readonly declare: string[];
  readonly fill: string[];
  readonly unjump: string[];
  readonly jump: string[];
  readonly deleteGone: string[];
}

function refOf(key: string): ChainRef {
  const space = key.indexOf(' ');
  return { table: key.slice(0, space), chain: key.slice(space + 1) };
}

function groupJumps(jumps: readonly JumpRule[]): Map<string, JumpRule[]> {
  const groups = new Map<string, JumpRule[]>();
  for (const jump of jumps) {
    const key = chainKey(jump.table, jump.from);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [jump]);
    else group.push(jump);
  }
  return groups;
}

function sameRules(memory: Fingerprint, rules: readonly string[]): boolean {
  return memory.rules === rules || memory.wanted === rules.join('\n');
}

/** Full plan: what was written is still wanted, and iptables-save still prints what it printed after the write. */
function isCurrent(memory: Fingerprint | undefined, wanted: readonly string[], saved: readonly string[] | undefined): boolean {
  return memory !== undefined && memory.saved !== undefined && saved !== undefined && sameRules(memory, wanted) && memory.saved === saved.join('\n');
}

/** The text after `-A CHAIN ` of a remembered jump group, as `-D CHAIN …` takes it back. */
function recordedJumpLines(memory: Fingerprint | undefined): string[] {
  if (memory === undefined) return [];
  if (memory.saved !== undefined) return memory.saved.split('\n');
  // Never read back: `-D` matches by the parsed rule, so the spelling it was written in deletes it too.
  return memory.wanted.split('\n').map((line) => line.slice(line.indexOf(' ', 3) + 1));
}

/**
 * Plans the restore that makes the owner's chains and jumps `desired`: from `saved` (what
 * iptables-save shows: a full plan) or, when `saved` is undefined, from `memory` alone (a partial
 * plan that trusts the record of what was written).
 */
export function planRestore(desired: FamilyRules, saved: SavedRules | undefined, memory: FamilyMemory): RestorePlan {
  const sections = new Map<string, TableSection>();
  const section = (table: string): TableSection => {
    let s = sections.get(table);
    if (s === undefined) {
      s = { declare: [], fill: [], unjump: [], jump: [], deleteGone: [] };
      sections.set(table, s);
    }
    return s;
  };
  const writtenChains: Written[] = [];
  const writtenJumps: Written[] = [];
  const deleted: string[] = [];
  const rewrittenJumps: string[] = [];

  const wantedChains = new Set<string>();
  for (const chain of desired.chains) {
    const key = chainKey(chain.table, chain.name);
    wantedChains.add(key);
    const known = memory.chains.get(key);
    if (saved === undefined ? known !== undefined && sameRules(known, chain.rules) : isCurrent(known, chain.rules, saved.chains.get(key))) continue;
    const s = section(chain.table);
    // Declaring a chain empties it, also under --noflush, with both backends (kube-proxy relies on
    // the same). No `-F`: iptables-nft-restore gets quadratic with it, 209 s instead of 9 s for
    // 210,000 rules in 10,000 chains.
    s.declare.push(`:${chain.name} - [0:0]`);
    for (const rule of chain.rules) s.fill.push(`-A ${chain.name} ${rule}`);
    writtenChains.push({ key, wanted: chain.rules.join('\n'), rules: chain.rules, count: chain.rules.length });
  }

  const desiredJumps = groupJumps(desired.jumps);
  for (const key of new Set([...desiredJumps.keys(), ...(saved ?? memory).jumps.keys()])) {
    const group = desiredJumps.get(key) ?? [];
    const known = memory.jumps.get(key);
    const current = saved === undefined ? recordedJumpLines(known) : (saved.jumps.get(key) ?? []);
    const rendered = group.map(renderJump);
    const wanted = rendered.join('\n');
    const upToDate = saved === undefined ? known?.wanted === wanted : isCurrent(known, rendered, current);
    if (group.length === 0 ? current.length === 0 : upToDate) continue;
    // The whole group is rewritten so that our jumps keep their relative order in the chain.
    const { table, chain } = refOf(key);
    const s = section(table);
    for (const line of current) s.unjump.push(`-D ${chain} ${line}`);
    s.jump.push(...rendered.filter((line) => line.startsWith('-A ')));
    // Each insert lands on top: insert in reverse to keep the desired order.
    s.jump.push(...rendered.filter((line) => line.startsWith('-I ')).reverse());
    rewrittenJumps.push(key);
    if (group.length > 0) writtenJumps.push({ key, wanted, count: group.length });
  }

  // Chains no longer wanted are emptied by their declaration at the top (one may still reference
  // another) and deleted at the end, once the jumps into them are gone.
  for (const key of (saved ?? memory).chains.keys()) {
    if (wantedChains.has(key)) continue;
    const { table, chain } = refOf(key);
    const s = section(table);
    s.declare.push(`:${chain} - [0:0]`);
    s.deleteGone.push(`-X ${chain}`);
    deleted.push(key);
  }

  const others = [...sections.keys()].filter((t) => !(IPTABLES_TABLES as readonly string[]).includes(t)).sort();
  // Line by line rather than push(...block): a spread of 100,000s of lines overflows the stack.
  const lines: string[] = [];
  for (const table of [...IPTABLES_TABLES, ...others]) {
    const s = sections.get(table);
    if (s === undefined) continue;
    lines.push(`*${table}`);
    for (const block of [s.declare, s.fill, s.unjump, s.jump, s.deleteGone]) for (const line of block) lines.push(line);
    lines.push('COMMIT');
  }
  return {
    input: lines.length === 0 ? '' : `${lines.join('\n')}\n`,
    writtenChains: writtenChains.map((w) => refOf(w.key)),
    deletedChains: deleted.map(refOf),
    rewrittenJumps: rewrittenJumps.map(refOf),
    written: { chains: writtenChains, jumps: writtenJumps },
  };
}

/** iptables-save disagrees with what a restore that succeeded should have left. */
export class IptablesStateError extends Error {
  override readonly name = 'IptablesStateError';
}

/**
 * Records the fingerprints of what a successful restore wrote and forgets what was deleted. With
 * `after` (the iptables-save taken right after a full write) also what iptables-save prints for it,
 * and throws when the host does not show what was written (a rule count differs), leaving those
 * entries forgotten so the next apply rewrites them. Without it (a partial write) the printed form
 * stays unknown until the next full plan, which rewrites the chain once to learn it.
 */
export function rememberRestore(plan: RestorePlan, after: SavedRules | undefined, memory: FamilyMemory): void {
  const problems: string[] = [];
  const record = (kind: 'chain' | 'jumps in', written: Written, lines: readonly string[] | undefined, into: Map<string, Fingerprint>): void => {
    const fingerprint = (saved: string | undefined): Fingerprint => ({ wanted: written.wanted, saved, ...(written.rules === undefined ? {} : { rules: written.rules }) });
    if (after === undefined) {
      into.set(written.key, fingerprint(undefined));
      return;
    }
    const shown = lines?.length ?? 0;
    if (lines === undefined || shown !== written.count) {
      into.delete(written.key);
      const { table, chain } = refOf(written.key);
      problems.push(`${kind} ${table}/${chain}: wrote ${written.count} rules, iptables-save shows ${lines === undefined ? 'no chain' : shown}`);
      return;
    }
    into.set(written.key, fingerprint(lines.join('\n')));
  };
  for (const w of plan.written.chains) record('chain', w, after?.chains.get(w.key), memory.chains);
  for (const w of plan.written.jumps) record('jumps in', w, after?.jumps.get(w.key) ?? [], memory.jumps);
  for (const ref of plan.deletedChains) {
    const key = chainKey(ref.table, ref.chain);
    memory.chains.delete(key);
    if (after?.chains.has(key) === true) problems.push(`chain ${ref.table}/${ref.chain}: deleted, but iptables-save still shows it`);
  }
  for (const ref of plan.rewrittenJumps) {
    const key = chainKey(ref.table, ref.chain);
    if (!plan.written.jumps.some((w) => w.key === key)) memory.jumps.delete(key);
  }
  if (problems.length > 0) throw new IptablesStateError(`after iptables-restore: ${problems.join('; ')}`);
}

/**
 * After a restore that failed: what it touched is unknown now (iptables-legacy-restore commits
 * table by table, so part of it may be in place), so its fingerprints go and a full plan rewrites
 * those chains and jump groups; the rest is still checked against iptables-save as usual.
 */
export function forgetPlanned(plan: RestorePlan, memory: FamilyMemory): void {
  for (const ref of [...plan.writtenChains, ...plan.deletedChains]) memory.chains.delete(chainKey(ref.table, ref.chain));
  for (const ref of plan.rewrittenJumps) memory.jumps.delete(chainKey(ref.table, ref.chain));
}

/** Drops fingerprints of chains and jump groups that are neither desired nor on the host. */
export function forgetAbsent(desired: FamilyRules, saved: SavedRules, memory: FamilyMemory): void {
  const wantedChains = new Set(desired.chains.map((c) => chainKey(c.table, c.name)));
  for (const key of memory.chains.keys()) if (!wantedChains.has(key) && !saved.chains.has(key)) memory.chains.delete(key);
  const wantedJumps = new Set(desired.jumps.map((j) => chainKey(j.table, j.from)));
  for (const key of memory.jumps.keys()) if (!wantedJumps.has(key) && !saved.jumps.has(key)) memory.jumps.delete(key);
}
