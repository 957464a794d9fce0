// Resolving DNS-named peer endpoints before comparing and writing.
//
// `wg showconf` prints endpoints as IP addresses, so a desired `vpn.example.com:51820` never
// compares equal to what the device holds. Resolving first, as `wg` itself would (first address
// of getaddrinfo), makes the comparison exact, and re-resolving on every apply moves a peer when
// its name moves, which `wg` alone never does (it resolves once, when the peer is set).
import { lookup } from 'node:dns/promises';
import { DNS_LOOKUP_TIMEOUT_MS, withTimeout } from '../host/timeouts.js';
import type { Endpoint } from '../model/endpoint.js';
import { type Ip, parseIp } from '../model/ip.js';
import type { WireGuardConfig, WireGuardPeer } from './config.js';

export type HostLookup = (name: string) => Promise<Ip>;

/** The system resolver (getaddrinfo, as `wg` uses), bounded: a hung resolver must not hold the mesh. */
export const lookupHost: HostLookup = async (name) =>
  parseIp((await withTimeout(lookup(name), DNS_LOOKUP_TIMEOUT_MS, 'dns', `DNS look-up of ${name}`)).address);

export interface ResolvedConfig {
  /** The config with every endpoint an IP; a peer whose name did not resolve has no endpoint. */
  readonly config: WireGuardConfig;
  /** One line per endpoint that did not resolve, naming the peer: safe to log. */
  readonly unresolved: readonly string[];
}

/**
 * A peer whose name does not resolve loses its endpoint rather than failing the whole config:
 * without an endpoint the device keeps whatever it has (see diffConfig), and one bad name must
 * not cut the tunnels to every other peer.
 */
export async function resolveEndpoints(config: WireGuardConfig, lookupName: HostLookup = lookupHost): Promise<ResolvedConfig> {
  const unresolved: string[] = [];
  const peers = await Promise.all(
    config.peers.map(async (peer): Promise<WireGuardPeer> => {
      const host = peer.endpoint?.host;
      if (peer.endpoint === undefined || host?.kind !== 'dns') return peer;
      try {
        const endpoint: Endpoint = { host: { kind: 'ip', ip: await lookupName(host.name) }, port: peer.endpoint.port };
        return { ...peer, endpoint };
      } catch (error) {
        unresolved.push(`peer ${peer.publicKey}: endpoint ${host.name}:${peer.endpoint.port} does not resolve: ${(error as Error).message}`);
        const { endpoint: _unresolvable, ...rest } = peer;
        return rest;
      }
    }),
  );
  return { config: { interface: config.interface, peers }, unresolved };
}
