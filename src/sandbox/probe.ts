// Reachability without ping (iputils is not installed here, and ICMP needs raw sockets): a TCP
// connect from inside a namespace. A refused connection proves as much as an echo reply does:
// the SYN got there and the RST found its way back.
import { runCommand } from '../host/command.js';

export type TcpProbeResult = 'open' | 'refused' | 'unreachable' | 'timeout';

/** Port 9 (discard): nothing listens on it in the sandbox, so a reachable host answers with RST. */
export const UNUSED_PORT = 9;

const PROBE_SCRIPT = `
const [host, port, timeoutMs] = process.argv.slice(1);
const report = (result) => { process.stdout.write(result); process.exit(0); };
setTimeout(() => report('timeout'), Number(timeoutMs));
const socket = require('node:net').connect({ host, port: Number(port) });
socket.on('connect', () => report('open'));
socket.on('error', (e) => {
  if (e.code === 'ECONNREFUSED') report('refused');
  else if (e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH') report('unreachable');
  else report('error ' + e.code);
});
`;

export async function probeTcp(netns: string, host: string, port: number, timeoutMs: number): Promise<TcpProbeResult> {
  const { stdout } = await runCommand(process.execPath, ['-e', PROBE_SCRIPT, host, String(port), String(timeoutMs)], {
    netns,
    timeoutMs: timeoutMs + 10_000,
  });
  if (stdout === 'open' || stdout === 'refused' || stdout === 'unreachable' || stdout === 'timeout') return stdout;
  throw new Error(`probe from ${netns} to ${host}:${port}: ${stdout || 'no result'}`);
}

export function isReachable(result: TcpProbeResult): boolean {
  return result === 'open' || result === 'refused';
}
