// Routes as `ip -j -d route show` reports them, normalised so destinations are always CIDRs
// and defaults that ip leaves out (table main, protocol boot) are filled in.
import { IpJsonObject, readIpJson, type IpOptions } from './ip.js';

export interface NextHop {
  readonly gateway: string | undefined;
  readonly dev: string | undefined;
  readonly weight: number | undefined;
  readonly flags: readonly string[];
}

export interface Route {
  readonly family: 4 | 6;
  /** 'unicast', 'local', 'broadcast', 'blackhole', 'unreachable', ... */
  readonly type: string;
  /** Always a CIDR: 'default' becomes 0.0.0.0/0 or ::/0, a bare host address gets /32 or /128. */
  readonly dst: string;
  readonly gateway: string | undefined;
  readonly dev: string | undefined;
  /** As iproute2 names it: 'kernel', 'boot', 'static', a name from rt_protos, or a number. */
  readonly protocol: string;
  readonly scope: string;
  /** 'main', 'local', or the table number. */
  readonly table: string;
  readonly metric: number | undefined;
  readonly prefsrc: string | undefined;
  readonly flags: readonly string[];
  /** Multipath routes carry their gateways here instead of in `gateway`/`dev`. */
  readonly nexthops: readonly NextHop[];
}

function normaliseDst(dst: string, family: 4 | 6): string {
  if (dst === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  if (dst.includes('/')) return dst;
  return `${dst}/${family === 4 ? 32 : 128}`;
}

/** `queriedTable`: ip leaves the table out of routes listed with `table N` (and of main's). */
export function parseRoute(value: unknown, family: 4 | 6, queriedTable = 'main'): Route {
  const o = new IpJsonObject(value, 'ip route entry');
  return {
    family,
    type: o.optionalString('type') ?? 'unicast',
    dst: normaliseDst(o.string('dst'), family),
    gateway: o.optionalString('gateway'),
    dev: o.optionalString('dev'),
    protocol: o.name('protocol') ?? 'boot',
    scope: o.optionalString('scope') ?? 'global',
    table: o.name('table') ?? (queriedTable === 'all' ? 'main' : queriedTable),
    metric: o.optionalNumber('metric'),
    prefsrc: o.optionalString('prefsrc'),
    flags: o.strings('flags'),
    nexthops: o.objects('nexthops').map((nh) => ({
      gateway: nh.optionalString('gateway'),
      dev: nh.optionalString('dev'),
      weight: nh.optionalNumber('weight'),
      flags: nh.strings('flags'),
    })),
  };
}

export interface RouteQuery extends IpOptions {
  /** Both families when absent. */
  readonly family?: 4 | 6;
  /** 'main' when absent; 'all' lists every table. */
  readonly table?: string | number;
}

export async function listRoutes(query: RouteQuery = {}): Promise<Route[]> {
  const families: (4 | 6)[] = query.family === undefined ? [4, 6] : [query.family];
  const table = String(query.table ?? 'main');
  const lists = await Promise.all(
    families.map(async (family) =>
      (await readIpJson([`-${family}`, '-d', 'route', 'show', 'table', table], query)).map((r) =>
        parseRoute(r, family, table),
      ),
    ),
  );
  return lists.flat();
}
