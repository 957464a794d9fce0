// The agent's own iptables chains, as data: what a caller asks the iptables dataplane to program.
// Rules are iptables-restore argument strings (`-s 10.2.1.0/24 -j RETURN`), written as given.
import type { Family } from '../../model/ip.js';

export type IptablesTable = 'raw' | 'mangle' | 'nat' | 'filter';

export const IPTABLES_TABLES: readonly IptablesTable[] = ['raw', 'mangle', 'nat', 'filter'];

/**
 * Text for a rule's quoted `--comment`. Parts of it (Service and port names) come from the cluster,
 * where a cluster file is not checked by an API server: only characters that cannot close the quotes
 * or escape stay, every other one becomes '_'. Every mode that writes comments goes through this.
 */
export function ruleComment(text: string): string {
  return text.replace(/[^A-Za-z0-9._/: -]/g, '_');
}

/** A chain the agent owns entirely: every rule in it is the agent's, in this order. */
export interface OwnedChain {
  readonly table: IptablesTable;
  readonly name: string;
  readonly rules: readonly string[];
}

/**
 * A rule the agent places in a chain it does not own (usually a built-in one such as POSTROUTING)
 * to send traffic into one of its own chains. It is recognised later by its comment alone, so the
 * comment must start with the owner's comment prefix.
 */
export interface JumpRule {
  readonly table: IptablesTable;
  readonly from: string;
  readonly to: string;
  /** Matches before the comment, e.g. `-s 10.2.1.0/24`; empty or absent for every packet. */
  readonly match?: string;
  readonly comment: string;
  /** `append` after the chain's existing rules, `insert` before them. */
  readonly position: 'append' | 'insert';
}

export interface FamilyRules {
  readonly chains: readonly OwnedChain[];
  readonly jumps: readonly JumpRule[];
}

/** A family left out wants nothing: its chains and jumps are removed. */
export type DesiredRules = Readonly<Partial<Record<Family, FamilyRules>>>;

export const NO_RULES: FamilyRules = { chains: [], jumps: [] };

/**
 * What marks a chain or a jump as one instance's own. Two instances in one network namespace (the
 * mesh and the service proxy) need prefixes where neither starts with the other, or each would
 * delete the other's chains as leftovers.
 */
export interface ChainOwner {
  readonly chainPrefix: string;
  readonly commentPrefix: string;
}

export const WIRELANE_OWNER: ChainOwner = { chainPrefix: 'WIRELANE-', commentPrefix: 'wirelane:' };

export class IptablesRulesError extends Error {
  override readonly name = 'IptablesRulesError';
}

// The kernel's XT_EXTENSION_MAXNAMELEN is 29 including the terminating NUL.
const MAX_CHAIN_NAME = 28;
const CHAIN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const TARGET = /(?:^|\s)-[jg]\s+(\S+)/g;

/** The restore line that adds a jump (`-A`/`-I`), with the comment quoted as iptables-save would. */
export function renderJump(jump: JumpRule): string {
  const op = jump.position === 'append' ? '-A' : '-I';
  const match = jump.match === undefined || jump.match.trim() === '' ? '' : `${jump.match.trim()} `;
  return `${op} ${jump.from} ${match}-m comment --comment "${jump.comment}" -j ${jump.to}`;
}

/**
 * Rules arrays already checked line by line, with the targets their rules jump to. An apply that
 * hands over an unchanged chain's array again (10,000 services: 120,000 rules, most of an idle
 * apply's time when parsed each time) only has those targets checked against the declared chains.
 */
export type CheckedRules = WeakMap<readonly string[], readonly string[]>;

/** The `-j`/`-g` targets of a chain's rules; throws when a rule is not one non-empty line. */
function targetsOf(rules: readonly string[], at: (i: number) => string): string[] {
  const targets: string[] = [];
  rules.forEach((rule, i) => {
    if (rule.trim() === '' || /[\n\r]/.test(rule)) throw new IptablesRulesError(`${at(i)}: must be one non-empty line`);
    for (const [, target] of rule.matchAll(TARGET)) if (target !== undefined) targets.push(target);
  });
  return targets;
}

/** Throws an IptablesRulesError naming the family, chain and field at fault. */
export function validateFamilyRules(family: Family, rules: FamilyRules, owner: ChainOwner, checked?: CheckedRules): void {
  const where = `IPv${family} iptables rules`;
  const declared = new Set<string>();
  for (const chain of rules.chains) {
    const at = `${where}: chain ${chain.table}/${chain.name}`;
    if (!IPTABLES_TABLES.includes(chain.table)) throw new IptablesRulesError(`${at}: unknown table "${chain.table}"`);
    if (!chain.name.startsWith(owner.chainPrefix) || chain.name.length <= owner.chainPrefix.length) {
      throw new IptablesRulesError(`${at}: name must start with "${owner.chainPrefix}"`);
    }
    if (chain.name.length > MAX_CHAIN_NAME || !CHAIN_NAME.test(chain.name)) {
      throw new IptablesRulesError(`${at}: name must be at most ${MAX_CHAIN_NAME} letters, digits, "_", "." or "-"`);
    }
    const key = chainKey(chain.table, chain.name);
    if (declared.has(key)) throw new IptablesRulesError(`${at}: declared twice`);
    declared.add(key);
  }
  for (const chain of rules.chains) {
    const at = `${where}: chain ${chain.table}/${chain.name}`;
    let targets = checked?.get(chain.rules);
    if (targets === undefined) {
      targets = targetsOf(chain.rules, (i) => `${at} rule ${i + 1}`);
      checked?.set(chain.rules, targets);
    }
    for (const target of targets) {
      if (target.startsWith(owner.chainPrefix) && !declared.has(chainKey(chain.table, target))) {
        throw new IptablesRulesError(`${at}: jumps to ${target}, which is not a desired chain in table ${chain.table}`);
      }
    }
  }
  for (const jump of rules.jumps) {
    const at = `${where}: jump ${jump.table}/${jump.from} -> ${jump.to}`;
    if (jump.from.startsWith(owner.chainPrefix)) throw new IptablesRulesError(`${at}: from must be a chain the agent does not own`);
    if (!declared.has(chainKey(jump.table, jump.to))) throw new IptablesRulesError(`${at}: to must be a desired chain in table ${jump.table}`);
    if (!jump.comment.startsWith(owner.commentPrefix)) {
      throw new IptablesRulesError(`${at}: comment "${jump.comment}" must start with "${owner.commentPrefix}"`);
    }
    if (/["\\\n\r]/.test(jump.comment) || jump.comment.length > 255) {
      throw new IptablesRulesError(`${at}: comment must be one line of at most 255 characters without quotes or backslashes`);
    }
    if (jump.match !== undefined && /[\n\r]/.test(jump.match)) throw new IptablesRulesError(`${at}: match must be one line`);
  }
}

/** Identifies a chain within a family; chain names cannot contain spaces. */
export function chainKey(table: string, chain: string): string {
  return `${table} ${chain}`;
}
