// A NodePort held open so that nothing else on the node can take it (kube-proxy's userspace mode
// did the same): a TCP listener or a bound UDP socket on the wildcard address of one family. The
// portal rules redirect NodePort traffic to the proxy socket before it reaches the holder; what
// reaches it anyway (an address outside --nodeport-addresses, loopback) is reset or ignored.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server } from 'node:net';
import type { Family } from '../../model/ip.js';

export interface NodePortClaim {
  readonly protocol: 'TCP' | 'UDP';
  readonly family: Family;
  readonly port: number;
  release(): Promise<void>;
}

export function wildcardAddress(family: Family): string {
  return family === 4 ? '0.0.0.0' : '::';
}

/** Rejects with the bind error: EADDRINUSE when another process (or service) holds the port. */
export async function claimNodePort(protocol: 'TCP' | 'UDP', family: Family, port: number): Promise<NodePortClaim> {
  const address = wildcardAddress(family);
  if (protocol === 'TCP') {
    const server = createServer((socket) => {
      socket.on('error', () => {});
      socket.resetAndDestroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: address, port, ipv6Only: family === 6, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => {});
    return { protocol, family, port, release: () => closeServer(server) };
  }
  const socket = createSocket({ type: family === 4 ? 'udp4' : 'udp6', ipv6Only: family === 6 });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.on('error', () => {});
  return { protocol, family, port, release: () => closeUdp(socket) };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function closeUdp(socket: UdpSocket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}
