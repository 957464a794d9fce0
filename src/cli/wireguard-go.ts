import { createLogger } from '../observability/logger.js';
import { runUserspaceDaemon } from '../wireguard/userspace-daemon.js';
import { type Command, LOG_LEVEL_OPTION } from './command.js';
import { interfaceFlag, parseLogLevelFlag, stringFlag } from './flags.js';

export const wireguardGo: Command = {
  name: 'wireguard-go',
  summary: "run wireguard-go for the agent's interface where the kernel has no WireGuard, else idle",
  usage: 'wirelane wireguard-go [--interface NAME] [--wireguard-go PATH]',
  help: `The DaemonSet's wireguard container. Where the kernel cannot create WireGuard links it runs
wireguard-go in the foreground for the interface, so the tunnel lives outside the agent's container
and survives the agent's restarts; the agent (--userspace-wireguard external) adopts the device.
Where the kernel has WireGuard it idles until stopped: the agent creates a kernel device.
While another wireguard-go serves the interface it waits for that one to end, and never stops it.
SIGTERM stops wireguard-go, which removes its device. Exits with wireguard-go's exit code.

Flags:
  --interface NAME       the agent's WireGuard interface (default wirelane0)
  --wireguard-go PATH    the wireguard-go binary (default: wireguard-go on PATH)
  --log-level LEVEL      trace, debug, info, warn, error (default info); wireguard-go's own
                         output follows its LOG_LEVEL environment variable (default error)`,
  options: {
    interface: { type: 'string', default: 'wirelane0' },
    'wireguard-go': { type: 'string', default: 'wireguard-go' },
    ...LOG_LEVEL_OPTION,
  },
  async run(values) {
    const name = interfaceFlag(values);
    const log = createLogger(parseLogLevelFlag(stringFlag(values, 'log-level') ?? 'info'));
    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    return runUserspaceDaemon({ name, wireguardGo: stringFlag(values, 'wireguard-go') ?? 'wireguard-go', log, stop: stop.signal });
  },
};
