// Deleting connection-tracking entries with the `conntrack` tool. A service proxy needs it for UDP:
// a flow's entry keeps sending its packets to the endpoint it was NATed to first, even after that
// endpoint or the whole service is gone, until the flow stays idle for the UDP timeout; a client
// that keeps sending (DNS) never recovers by itself (k/k #19029, #48370).
import type { Family, Ip } from '../model/ip.js';
import { formatIp } from '../model/ip.js';
import { firstLine } from '../observability/first-line.js';
import { CommandError, commandLine, runCommand } from './command.js';

/** Which entries to delete: every given field must match; at least protocol and family. */
export interface ConntrackFilter {
  readonly protocol: 'udp' | 'tcp' | 'sctp';
  /** The destination the client used (a service IP), before any DNAT. */
  readonly origDst?: Ip;
  /** The destination port the client used (the service port or node port). */
  readonly origDstPort?: number;
  /** Where replies come from: the endpoint the flow was DNATed to. */
  readonly replySrc?: Ip;
  readonly family: Family;
}

export interface ConntrackOptions {
  /** Delete in this named network namespace (each has its own table). */
  readonly netns?: string;
}

/** The `conntrack` arguments for a filter; throws when an address's family is not the filter's. */
export function conntrackDeleteArgs(filter: ConntrackFilter): string[] {
  const args = ['-D', '-f', filter.family === 4 ? 'ipv4' : 'ipv6', '-p', filter.protocol];
  const address = (field: 'origDst' | 'replySrc', flag: string): void => {
    const ip = filter[field];
    if (ip === undefined) return;
    if (ip.family !== filter.family) throw new Error(`conntrack filter: ${field} ${formatIp(ip)} is not IPv${filter.family}`);
    args.push(flag, formatIp(ip));
  };
  address('origDst', '--orig-dst');
  if (filter.origDstPort !== undefined) {
    if (!Number.isInteger(filter.origDstPort) || filter.origDstPort < 1 || filter.origDstPort > 65535) {
      throw new Error(`conntrack filter: origDstPort ${filter.origDstPort} is not a port`);
    }
    args.push('--orig-port-dst', String(filter.origDstPort));
  }
  address('replySrc', '--reply-src');
  return args;
}

const DELETED = /(\d+) flow entr(?:y|ies) ha(?:s|ve) been deleted/;

/**
 * Deletes the matching entries and returns how many there were. conntrack exits 1 when nothing
 * matched ("0 flow entries have been deleted"); that is not an error here.
 */
export async function deleteConntrack(filter: ConntrackFilter, opts: ConntrackOptions = {}): Promise<number> {
  const args = conntrackDeleteArgs(filter);
  const result = await runCommand('conntrack', args, { ...(opts.netns === undefined ? {} : { netns: opts.netns }), allowFailure: true });
  const deleted = DELETED.exec(result.stderr) ?? DELETED.exec(result.stdout);
  if (result.exitCode === 0 || (result.exitCode === 1 && deleted?.[1] === '0')) return Number(deleted?.[1] ?? 0);
  const detail = firstLine(result.stderr);
  throw new CommandError(commandLine('conntrack', args, opts.netns), result.exitCode, result.stdout, result.stderr, `exit code ${result.exitCode}${detail === '' ? '' : `: ${detail}`}`);
}
