// The writes that turn the agent's current routes into the desired ones: a pure, O(n) diff keyed
// by the kernel's own identity of a route (family, table, destination network; the agent never
// sets a metric or TOS), comparing only what the agent sets (gateway, device, source, onlink).
import type { Route as KernelRoute } from '../../host/routes.js';
import { formatCidr, formatIp, networkOf, parseCidr, parseIp, type Family } from '../../model/ip.js';
import type { Route } from '../../model/route.js';
import type { BatchLine } from '../../host/batch.js';
import type { WriteFailure } from '../partial-apply.js';

/** The kernel's number for the main table; `ip -N` prints it instead of the name. */
export const MAIN_TABLE = 254;

/** One line of an `ip -4|-6 -batch`, with a description for error messages. */
export interface PlannedWrite {
  readonly family: Family;
  readonly args: BatchLine;
  readonly what: string;
  /** The device the write needs to exist; checked before writing. */
  readonly dev?: string;
}

export interface Plan {
  readonly writes: readonly PlannedWrite[];
  /** Desired items that cannot be written at all, with why. */
  readonly rejected: readonly WriteFailure[];
}

/** A route reduced to canonical strings, so equal routes compare equal whatever their spelling. */
interface CanonicalRoute {
  readonly family: Family;
  readonly key: string;
  readonly dst: string;
  readonly table: number;
  readonly gw: string | undefined;
  readonly dev: string;
  readonly src: string | undefined;
  /** Only meaningful with a gateway; false without one so it never causes a difference. */
  readonly onlink: boolean;
}

/** Linux interface names: 1–15 bytes, no '/', no whitespace; quotes and '#' would break a batch. */
export function isInterfaceName(name: string): boolean {
  return /^[^\s/:"'#\\]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

/** Why the agent may not write to `table`, or undefined: 0 is "unspecified", 255 the local table. */
export function tableProblem(table: number): string | undefined {
  if (Number.isInteger(table) && table >= 1 && table <= 0xffffffff && table !== 255) return undefined;
  return `field table: ${table} is not a routing table the agent may use`;
}

function tableNumber(table: Route['table']): number {
  return table === 'main' ? MAIN_TABLE : table;
}

function tableLabel(table: number): string {
  return table === MAIN_TABLE ? 'main' : String(table);
}

function keyOf(family: Family, table: number, dst: string): string {
  return `${family} ${table} ${dst}`;
}

function sameValue(a: CanonicalRoute, b: CanonicalRoute): boolean {
  return a.gw === b.gw && a.dev === b.dev && a.src === b.src && a.onlink === b.onlink;
}

function describeRoute(route: Route): string {
  const dst = formatCidr(networkOf(route.dst));
  const gw = route.gw === undefined ? '' : ` via ${formatIp(route.gw)}`;
  return `route ${dst}${gw} dev ${route.dev} table ${route.table}`;
}

function canonicalise(route: Route): CanonicalRoute | string {
  if (!isInterfaceName(route.dev)) return `field dev: "${route.dev}" is not an interface name`;
  const table = tableNumber(route.table);
  const badTable = tableProblem(table);
  if (badTable !== undefined) return badTable;
  if (route.gw !== undefined && route.gw.family !== route.dst.family) {
    return `field gw: an IPv${route.gw.family} gateway for an IPv${route.dst.family} destination`;
  }
  if (route.src !== undefined && route.src.family !== route.dst.family) {
    return `field src: an IPv${route.src.family} source for an IPv${route.dst.family} destination`;
  }
  const dst = formatCidr(networkOf(route.dst));
  return {
    family: route.dst.family,
    key: keyOf(route.dst.family, table, dst),
    dst,
    table,
    gw: route.gw === undefined ? undefined : formatIp(route.gw),
    dev: route.dev,
    src: route.src === undefined ? undefined : formatIp(route.src),
    onlink: route.gw !== undefined && route.onlink,
  };
}

/** IPv4 routes default to metric 0, IPv6 routes to 1024: those are the routes the agent writes. */
function hasDefaultMetric(route: KernelRoute): boolean {
  return route.metric === undefined || route.metric === (route.family === 4 ? 0 : 1024);
}

/** `ip -N` prints the route type as a number (1 = unicast). */
function isPlainUnicast(route: KernelRoute): boolean {
  return (route.type === '1' || route.type === 'unicast') && route.nexthops.length === 0 && hasDefaultMetric(route);
}

/** Tables come as numbers with `ip -N`; 'main' is what the reader fills in when ip leaves it out. */
function kernelTable(route: KernelRoute): number {
  return route.table === 'main' ? MAIN_TABLE : Number(route.table);
}

function canonicaliseKernel(route: KernelRoute): CanonicalRoute {
  const dst = formatCidr(networkOf(parseCidr(route.dst)));
  const table = kernelTable(route);
  const gw = route.gateway === undefined ? undefined : formatIp(parseIp(route.gateway));
  return {
    family: route.family,
    key: keyOf(route.family, table, dst),
    dst,
    table,
    gw,
    dev: route.dev ?? '',
    src: route.prefsrc === undefined ? undefined : formatIp(parseIp(route.prefsrc)),
    onlink: gw !== undefined && route.flags.includes('onlink'),
  };
}

function writeArgs(verb: 'add' | 'replace', r: CanonicalRoute, protocol: number): BatchLine {
  return [
    'route', verb, r.dst,
    ...(r.gw === undefined ? [] : ['via', r.gw]),
    'dev', r.dev,
    ...(r.onlink ? ['onlink'] : []),
    ...(r.src === undefined ? [] : ['src', r.src]),
    'table', String(r.table),
    'proto', String(protocol),
  ];
}

/** Deletes exactly one of the agent's routes: `proto` makes the kernel skip everyone else's. */
function deleteRouteArgs(route: KernelRoute, protocol: number): BatchLine {
  const dst = formatCidr(networkOf(parseCidr(route.dst)));
  return ['route', 'del', dst, 'table', route.table, 'proto', String(protocol), ...(route.metric === undefined ? [] : ['metric', String(route.metric)])];
}

function deletion(route: KernelRoute, protocol: number): PlannedWrite {
  return { family: route.family, args: deleteRouteArgs(route, protocol), what: `delete route ${route.dst} dev ${route.dev ?? '?'} table ${tableLabel(kernelTable(route))}` };
}

/** Desired routes in canonical form, by key, and those that cannot be written; what a plan compares the kernel's with. */
export interface WantedRoutes {
  readonly byKey: ReadonlyMap<string, CanonicalRoute>;
  readonly rejected: readonly WriteFailure[];
}

export function wantedRoutes(desired: readonly Route[]): WantedRoutes {
  const wanted = new Map<string, CanonicalRoute>();
  const rejected: WriteFailure[] = [];
  for (const route of desired) {
    const c = canonicalise(route);
    if (typeof c === 'string') {
      rejected.push({ what: describeRoute(route), reason: c });
      continue;
    }
    const other = wanted.get(c.key);
    if (other !== undefined && !sameValue(other, c)) {
      rejected.push({ what: describeRoute(route), reason: `conflicts with another desired route to ${c.dst} in table ${tableLabel(c.table)} (dev ${other.dev})` });
      continue;
    }
    wanted.set(c.key, c);
  }
  return { byKey: wanted, rejected };
}

/**
 * `current` must hold only the agent's routes (those with its protocol), as `ip -N` lists them.
 * A desired route that matches is left alone, one that differs is replaced in place, a missing
 * one is added (`add`, never `replace`, so a foreign route with the same key is never overwritten:
 * the kernel refuses instead), and every other current route is deleted. `wanted`: `desired` as
 * wantedRoutes gave it, when the caller kept it from an earlier plan of the same routes.
 */
export function planRoutes(desired: readonly Route[], current: readonly KernelRoute[], protocol: number, wanted: WantedRoutes = wantedRoutes(desired)): Plan {
  const writes: PlannedWrite[] = [];
  const present = new Map<string, CanonicalRoute>();
  for (const route of current) {
    const c = canonicaliseKernel(route);
    // A second route of ours under one key (or one with a metric we never set) is stale.
    if (!isPlainUnicast(route) || present.has(c.key)) {
      writes.push(deletion(route, protocol));
      continue;
    }
    present.set(c.key, c);
    if (!wanted.byKey.has(c.key)) writes.push(deletion(route, protocol));
  }
  for (const [key, want] of wanted.byKey) {
    const have = present.get(key);
    if (have !== undefined && sameValue(have, want)) continue;
    const verb = have === undefined ? 'add' : 'replace';
    const gw = want.gw === undefined ? '' : ` via ${want.gw}`;
    writes.push({
      family: want.family,
      args: writeArgs(verb, want, protocol),
      what: `${verb} route ${want.dst}${gw} dev ${want.dev} table ${tableLabel(want.table)}`,
      dev: want.dev,
    });
  }
  return { writes, rejected: wanted.rejected };
}
