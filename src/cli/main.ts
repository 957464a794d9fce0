// `wirelane <command>`: dispatch, --help, and the one-line error contract (exit 2 usage, 1 failure).
import { parseArgs } from 'node:util';
import { errorLine } from '../observability/first-line.js';
import { type Command, UsageError } from './command.js';
import { wirelaneVersion } from './version.js';

// Commands load lazily so a quick command does not pay for the Kubernetes client's start-up.
const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  agent: { summary: 'run the node agent', load: async () => (await import('./agent.js')).agent },
  cleanup: { summary: 'remove everything the agent made on this host, whatever mode made it', load: async () => (await import('./cleanup.js')).cleanup },
  topology: { summary: "print one node's view of the mesh (-o json)", load: async () => (await import('./topology.js')).topology },
  services: { summary: "print one node's service map (-o json)", load: async () => (await import('./services.js')).services },
  showconf: { summary: 'print the WireGuard configuration of a node or Peer', load: async () => (await import('./showconf.js')).showconf },
  graph: { summary: 'draw the mesh as DOT or SVG', load: async () => (await import('./graph.js')).graph },
  demo: { summary: 'run a four-node mesh in network namespaces and check it (root)', load: async () => (await import('./demo.js')).demo },
  status: { summary: "show the running agent's readiness, service proxy mode, mesh, WireGuard peers and syncs", load: async () => (await import('./status.js')).status },
  probe: { summary: 'report what the kernel offers the service data paths and the mode auto would choose', load: async () => (await import('./probe.js')).probe },
  connect: { summary: 'join the mesh as a Peer from a host outside the cluster, until interrupted', load: async () => (await import('./connect.js')).connect },
  keygen: { summary: 'write a WireGuard private key and print its public key', load: async () => (await import('./keygen.js')).keygen },
  'wireguard-go': { summary: "run wireguard-go for the agent's interface where the kernel has none", load: async () => (await import('./wireguard-go.js')).wireguardGo },
};

function topLevelHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: wirelane <command> [flags]\n       wirelane --version\n\nCommands:\n${lines.join('\n')}\n\nRun 'wirelane <command> --help' for a command's flags.\n`;
}

export function commandHelp(cmd: Command): string {
  return `Usage: ${cmd.usage}\n\n${cmd.summary}.\n\n${cmd.help}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(topLevelHelp());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version') {
    process.stdout.write(`wirelane ${wirelaneVersion()}\n`);
    return 0;
  }
  const entry = COMMANDS[name];
  if (entry === undefined) throw new UsageError(`unknown command "${name}" (see wirelane --help)`);
  const cmd = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(cmd));
    return 0;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    const args = rest.map((a) => (cmd.switches?.includes(a.slice(2)) && a.startsWith('--') ? `${a}=true` : a));
    parsed = parseArgs({ args, options: cmd.options, allowPositionals: cmd.allowPositionals ?? false, strict: true });
  } catch (err) {
    throw new UsageError(errorLine(err) || 'bad arguments');
  }
  return cmd.run(parsed.values, parsed.positionals);
}

export function describeFailure(err: unknown, verbose: boolean): string {
  if (verbose && err instanceof Error && err.stack) return err.stack;
  return errorLine(err);
}
