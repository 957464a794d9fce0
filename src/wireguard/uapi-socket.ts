// wireguard-go's UAPI sockets: /var/run/wireguard/NAME.sock, one per userspace device. The
// directory is a mount, not a netns object, so every network namespace shares it.
import { createConnection } from 'node:net';

export const UAPI_DIR = '/var/run/wireguard';

export function uapiSocketPath(name: string): string {
  return `${UAPI_DIR}/${name}.sock`;
}

/** Whether a wireguard-go accepts connections on the socket (a stale file left by a killed one does not). */
export function uapiSocketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
