// wireguard-go's UAPI sockets: /var/run/wireguard/NAME.sock, one per userspace device. The
// directory is a mount, not a netns object, so every network namespace shares it.
import { createConnection } from 'node:net';

export const UAPI_DIR = '/var/run/wireguard';

/** How long a connect may take before the socket's state counts as unknown. */
const PROBE_TIMEOUT_MS = 1000;

export function uapiSocketPath(name: string): string {
  return `${UAPI_DIR}/${name}.sock`;
}

/**
 * What connecting to a UAPI socket shows: `served` (a wireguard-go accepted), `stale` (the file is
 * there and connecting is refused: a killed wireguard-go left it), `absent`, or `unknown` (any other
 * error, or no answer in time).
 */
export type UapiSocketState = 'served' | 'stale' | 'absent' | 'unknown';

export function probeUapiSocket(path: string): Promise<UapiSocketState> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    const done = (state: UapiSocketState): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(state);
    };
    const timer = setTimeout(() => done('unknown'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done('served'));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code === 'ENOENT' ? 'absent' : error.code === 'ECONNREFUSED' ? 'stale' : 'unknown'));
  });
}

/** Whether a wireguard-go accepts connections on the socket (a stale file left by a killed one does not). */
export async function uapiSocketAnswers(path: string): Promise<boolean> {
  return (await probeUapiSocket(path)) === 'served';
}
