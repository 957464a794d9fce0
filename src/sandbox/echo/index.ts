// Echo backends and clients inside a sandbox's namespaces (see server.ts and client.ts).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SpawnedProcess } from '../../host/command.js';
import type { NetnsTarget, Sandbox } from '../sandbox.js';
import { cliPath } from '../mesh-cluster.js';

// The compiled scripts sit next to the compiled CLI, whether this module runs from src/ or dist/.
const script = (name: string) => join(dirname(cliPath()), '..', 'sandbox', 'echo', `${name}.js`);

export function startEchoServer(sandbox: Sandbox, target: NetnsTarget, name: string, ports: { tcp?: number; udp?: number }): SpawnedProcess {
  const args = [script('server'), name];
  if (ports.tcp !== undefined) args.push('--tcp', String(ports.tcp));
  if (ports.udp !== undefined) args.push('--udp', String(ports.udp));
  return sandbox.spawn(target, process.execPath, args, { stdout: 'ignore', stderr: 'ignore' });
}

export interface EchoRequestOptions {
  readonly count?: number;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  /** UDP: one socket (one flow) for every request. */
  readonly sameSocket?: boolean;
  /** Source address to bind. */
  readonly bind?: string;
}

/** One line per request: `<backend> <address the backend saw>` or `ERROR <code>`. */
export async function echoRequests(
  sandbox: Sandbox,
  from: NetnsTarget,
  protocol: 'tcp' | 'udp',
  host: string,
  port: number,
  opts: EchoRequestOptions = {},
): Promise<string[]> {
  const args = [script('client'), protocol, host, String(port), '--count', String(opts.count ?? 1), '--interval', String(opts.intervalMs ?? 0), '--timeout', String(opts.timeoutMs ?? 1000)];
  if (opts.sameSocket) args.push('--same-socket');
  if (opts.bind !== undefined) args.push('--bind', opts.bind);
  const out = await sandbox.exec(from, process.execPath, args);
  return out.stdout.split('\n').filter((l) => l !== '');
}
