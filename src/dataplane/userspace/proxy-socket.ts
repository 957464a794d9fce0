// What the TCP and UDP proxy sockets have in common: one listening socket of one service port, in
// one family, forwarding to an endpoint list that can be replaced while it runs.
import type { Logger } from '../../observability/logger.js';
import type { Family } from '../../model/ip.js';
import type { ServiceBackend } from '../../model/service.js';

export interface ProxySocketOptions {
  /** For log lines, e.g. `default/web:http/TCP internal IPv4`. */
  readonly name: string;
  readonly family: Family;
  /** The address to bind ('0.0.0.0', '::' or one host address of `family`). */
  readonly address: string;
  /** 0: any free port. */
  readonly port: number;
  readonly endpoints: readonly ServiceBackend[];
  readonly affinityTimeoutMs: number | undefined;
  readonly log: Logger;
  /** Milliseconds; Date.now by default. */
  readonly clock?: () => number;
  readonly random?: () => number;
}

export interface ProxySocketStats {
  /** TCP: proxied connections (each a client and a backend socket); UDP: client flows. */
  readonly connections: number;
  /** Bytes held in this process's stream buffers, both directions, every connection. */
  readonly bufferedBytes: number;
}

export interface ProxySocket {
  readonly protocol: 'TCP' | 'UDP';
  readonly family: Family;
  /** The port it is bound to (the one the portal rules redirect to). */
  readonly port: number;
  /** New connections and flows use `endpoints` from now on. */
  update(endpoints: readonly ServiceBackend[], affinityTimeoutMs: number | undefined): void;
  stats(): ProxySocketStats;
  /** Stops listening and ends every connection and flow it carries. */
  close(): Promise<void>;
}

/** Node prints IPv4 clients of a dual-stack socket as `::ffff:a.b.c.d`; affinity keys on the plain form. */
export function plainAddress(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}
