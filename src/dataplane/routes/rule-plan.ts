// The writes that turn the agent's current policy rules into the desired ones. All of the agent's
// rules share one priority: they only ever send narrow selectors to a lookup, so their order
// among themselves does not matter, and one priority keeps a rule's identity to its selectors
// (ip rule has no replace; a changed rule is a delete and an add).
import type { Rule as KernelRule } from '../../host/rules.js';
import { formatCidr, networkOf, parseIpOrCidr, type Cidr, type Family } from '../../model/ip.js';
import type { Rule } from '../../model/route.js';
import type { BatchLine } from '../../host/batch.js';
import type { WriteFailure } from '../partial-apply.js';
import { isInterfaceName, tableProblem, type Plan, type PlannedWrite } from './route-plan.js';

interface CanonicalRule {
  readonly family: Family;
  readonly key: string;
  readonly from: string | undefined;
  readonly to: string | undefined;
  readonly iif: string | undefined;
  readonly table: number;
}

function prefix(cidr: Cidr | undefined): string | undefined {
  return cidr === undefined ? undefined : formatCidr(networkOf(cidr));
}

/** ip prints a host prefix without its length; parse whatever it printed back into a network. */
function kernelPrefix(text: string | undefined): string | undefined {
  return text === undefined ? undefined : formatCidr(networkOf(parseIpOrCidr(text)));
}

/** "from X to Y iif Z table T", absent selectors left out: readable, and unique per rule. */
function selectorText(from: string | undefined, to: string | undefined, iif: string | undefined, table: number | string | undefined): string {
  const parts: string[] = [];
  if (from !== undefined) parts.push(`from ${from}`);
  if (to !== undefined) parts.push(`to ${to}`);
  if (iif !== undefined) parts.push(`iif ${iif}`);
  if (table !== undefined) parts.push(`table ${table}`);
  return parts.join(' ');
}

function keyOf(family: Family, from: string | undefined, to: string | undefined, iif: string | undefined, table: number): string {
  return `${family} ${selectorText(from, to, iif, table)}`;
}

function describeRule(rule: Rule): string {
  return `rule ${selectorText(prefix(rule.from), prefix(rule.to), rule.iif, rule.table)}`;
}

function canonicalise(rule: Rule): CanonicalRule | string {
  // The address family of a rule comes from its prefixes; "iif X" alone would silently be IPv4.
  const family = rule.from?.family ?? rule.to?.family;
  if (family === undefined) return 'needs from or to: without a prefix the address family is ambiguous';
  if (rule.from !== undefined && rule.to !== undefined && rule.from.family !== rule.to.family) {
    return `field to: an IPv${rule.to.family} prefix with an IPv${rule.from.family} from`;
  }
  if (rule.iif !== undefined && !isInterfaceName(rule.iif)) return `field iif: "${rule.iif}" is not an interface name`;
  const badTable = tableProblem(rule.table);
  if (badTable !== undefined) return badTable;
  const from = prefix(rule.from);
  const to = prefix(rule.to);
  return { family, key: keyOf(family, from, to, rule.iif, rule.table), from, to, iif: rule.iif, table: rule.table };
}

/** Whether a rule of ours is one the agent could have written at `priority`. */
function isPlainLookup(rule: KernelRule, priority: number): boolean {
  return (
    rule.priority === priority &&
    !rule.not &&
    rule.action === 'lookup' &&
    rule.oif === undefined &&
    rule.fwmark === undefined &&
    rule.table !== undefined
  );
}

/** Deletes one rule of ours: every selector it has, plus `protocol` so no one else's can match. */
function deleteRuleArgs(rule: KernelRule, protocol: number): BatchLine {
  return [
    'rule', 'del', 'priority', String(rule.priority),
    ...(rule.not ? ['not'] : []),
    ...(rule.src === undefined ? [] : ['from', rule.src]),
    ...(rule.dst === undefined ? [] : ['to', rule.dst]),
    ...(rule.iif === undefined ? [] : ['iif', rule.iif]),
    ...(rule.oif === undefined ? [] : ['oif', rule.oif]),
    ...(rule.fwmark === undefined ? [] : ['fwmark', rule.fwmask === undefined ? rule.fwmark : `${rule.fwmark}/${rule.fwmask}`]),
    ...(rule.action === 'lookup' && rule.table !== undefined ? ['table', rule.table] : []),
    'protocol', String(protocol),
  ];
}

function deletion(rule: KernelRule, protocol: number): PlannedWrite {
  const selectors = selectorText(rule.src, rule.dst, rule.iif, rule.table);
  return { family: rule.family, args: deleteRuleArgs(rule, protocol), what: `delete rule ${selectors} priority ${rule.priority}` };
}

/** `current` must hold only the agent's rules (those with its protocol), as `ip -N -d` lists them. */
export function planRules(desired: readonly Rule[], current: readonly KernelRule[], protocol: number, priority: number): Plan {
  const wanted = new Map<string, CanonicalRule>();
  const rejected: WriteFailure[] = [];
  for (const rule of desired) {
    const c = canonicalise(rule);
    if (typeof c === 'string') rejected.push({ what: describeRule(rule), reason: c });
    else wanted.set(c.key, c);
  }
  const writes: PlannedWrite[] = [];
  const present = new Set<string>();
  for (const rule of current) {
    const key = isPlainLookup(rule, priority)
      ? keyOf(rule.family, kernelPrefix(rule.src), kernelPrefix(rule.dst), rule.iif, Number(rule.table))
      : undefined;
    if (key === undefined || present.has(key) || !wanted.has(key)) writes.push(deletion(rule, protocol));
    else present.add(key);
  }
  for (const [key, want] of wanted) {
    if (present.has(key)) continue;
    writes.push({
      family: want.family,
      args: [
        'rule', 'add',
        ...(want.from === undefined ? [] : ['from', want.from]),
        ...(want.to === undefined ? [] : ['to', want.to]),
        ...(want.iif === undefined ? [] : ['iif', want.iif]),
        'table', String(want.table),
        'priority', String(priority),
        'protocol', String(protocol),
      ],
      what: `add rule ${selectorText(want.from, want.to, want.iif, want.table)} priority ${priority}`,
    });
  }
  return { writes, rejected };
}
