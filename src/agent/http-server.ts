// An HTTP server that a client on the network cannot knock over: it answers on the host network of
// every node, so any pod can reach it. Bounded headers, slow clients cut off, a connection limit, and
// an 'error' handler for the server's whole life (an accept error such as EMFILE must not crash the agent).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** Limits for a server whose clients are probes, scrapers and operators, never bulk transfers. */
export const HTTP_LIMITS = {
  maxHeaderBytes: 8 * 1024,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  /** Inactive sockets (a client that stops reading) are ended after this. */
  socketIdleMs: 10_000,
  maxConnections: 512,
  /** Per remote address, so that one pod holding connections open cannot lock out the kubelet's probes. */
  maxConnectionsPerClient: 16,
  maxRequestsPerSocket: 100,
} as const;

export interface ListenAddress {
  readonly host: string | undefined;
  readonly port: number;
}

/** Parses `[HOST]:PORT`: `:1107`, `127.0.0.1:1107`, `[::1]:1107`. */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? (m[2] === '' ? undefined : m[2]);
  return { host, port };
}

export function sameListenAddress(a: ListenAddress, b: ListenAddress): boolean {
  return a.port === b.port && a.host === b.host;
}

export function createBoundedServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
  const server = createServer(
    {
      maxHeaderSize: HTTP_LIMITS.maxHeaderBytes,
      headersTimeout: HTTP_LIMITS.headersTimeoutMs,
      requestTimeout: HTTP_LIMITS.requestTimeoutMs,
      keepAliveTimeout: HTTP_LIMITS.keepAliveTimeoutMs,
      // How often slow requests are looked for (Node's default, 30 s, lets a slowloris hold sockets long).
      connectionsCheckingInterval: 1_000,
    },
    handler,
  );
  server.maxConnections = HTTP_LIMITS.maxConnections;
  server.maxRequestsPerSocket = HTTP_LIMITS.maxRequestsPerSocket;
  server.setTimeout(HTTP_LIMITS.socketIdleMs, (socket) => socket.destroy());
  const perClient = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? '';
    const open = (perClient.get(client) ?? 0) + 1;
    if (open > HTTP_LIMITS.maxConnectionsPerClient) {
      socket.destroy();
      return;
    }
    perClient.set(client, open);
    socket.once('close', () => {
      const left = (perClient.get(client) ?? 1) - 1;
      if (left === 0) perClient.delete(client);
      else perClient.set(client, left);
    });
  });
  return server;
}

/**
 * Listens, rejecting if the address cannot be bound; afterwards `onError` hears every server error
 * for the server's whole life instead of the process crashing on it.
 */
export function listen(server: Server, address: ListenAddress, onError: (err: Error) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve();
    });
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
