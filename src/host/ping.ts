// An ICMP echo through one device: the data-path probe of a WireGuard tunnel.
import { type Ip, formatIp } from '../model/ip.js';
import { runCommand } from './command.js';

/**
 * Whether `ip` answered an echo sent out of `device` within `deadlineSeconds`. With a deadline and
 * a count of one, ping keeps sending (every 0.2 s) until the first reply, so one lost packet on a
 * working tunnel is not a failure. A missing ping binary or a timeout throws (unknown, not down).
 */
export async function answersPing(ip: Ip, device: string, deadlineSeconds: number): Promise<boolean> {
  const args = ['-n', '-q', '-c', '1', '-i', '0.2', '-w', String(deadlineSeconds), '-I', device, formatIp(ip)];
  const result = await runCommand('ping', args, { allowFailure: true, timeoutMs: (deadlineSeconds + 5) * 1000 });
  // 1: no reply; anything else (2: bad address, no such device) says nothing about the tunnel.
  if (result.exitCode === 0) return true;
  if (result.exitCode === 1) return false;
  throw new Error(`ping ${formatIp(ip)} via ${device}: exit code ${result.exitCode}: ${result.stderr.trim().split('\n')[0] ?? ''}`);
}
