// A snapshot of one namespace's network configuration, for tests that check a component left
// the host as it found it; and the part of it the agent reads at every reconcile.
import { listAddresses, parseAddresses, type InterfaceAddress } from './addresses.js';
import { type IpCommand, readIpJson, readIpJsonBatch, type IpOptions } from './ip.js';
import { listLinks, parseLink, type Link } from './links.js';
import { listRoutes, parseRoute, type Route } from './routes.js';
import { listRules, type Rule } from './rules.js';

export interface NetworkState {
  readonly links: readonly Link[];
  readonly addresses: readonly InterfaceAddress[];
  /** Every table, both families. */
  readonly routes: readonly Route[];
  readonly rules: readonly Rule[];
}

export async function captureNetworkState(opts: IpOptions = {}): Promise<NetworkState> {
  const [links, addresses, routes, rules] = await Promise.all([
    listLinks(opts),
    listAddresses(opts),
    listRoutes({ ...opts, table: 'all' }),
    listRules(opts),
  ]);
  return { links, addresses, routes, rules };
}

/** What a reconcile reads of the host: addresses, links and the main table's routes (both families). */
export interface Addressing {
  readonly addresses: readonly InterfaceAddress[];
  readonly links: readonly Link[];
  readonly mainRoutes: readonly Route[];
}

/** The reads of addresses, links and IPv4's main routes, for one `ip -d -batch` (without a family, `route show` lists IPv4's). */
export const ADDRESSING_READS: readonly IpCommand[] = [['addr', 'show'], ['link', 'show'], ['route', 'show', 'table', 'main']];

/** IPv6's main routes, as readAddressing reads them. */
export const MAIN_ROUTES_6: IpCommand = ['-6', '-d', 'route', 'show', 'table', 'main'];

/** The addressing from the answers to ADDRESSING_READS and to IPv6's main routes. */
export function addressingOf([addresses = [], links = [], routes4 = []]: readonly unknown[][], routes6: readonly unknown[]): Addressing {
  return {
    addresses: addresses.flatMap(parseAddresses),
    links: links.map(parseLink),
    mainRoutes: [...routes4.map((r) => parseRoute(r, 4)), ...routes6.map((r) => parseRoute(r, 6))],
  };
}

/** Two ip processes where there were four (each costs the agent a fork of itself). */
export async function readAddressing(opts: IpOptions = {}): Promise<Addressing> {
  const [reads, routes6] = await Promise.all([readIpJsonBatch(ADDRESSING_READS, { ...opts, globalArgs: ['-d'] }), readIpJson(MAIN_ROUTES_6, opts)]);
  return addressingOf(reads, routes6);
}
