// A snapshot of one namespace's network configuration, for tests that check a component left
// the host as it found it.
import { listAddresses, type InterfaceAddress } from './addresses.js';
import type { IpOptions } from './ip.js';
import { listLinks, type Link } from './links.js';
import { listRoutes, type Route } from './routes.js';
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
