// A TCP proxy socket: accepts a client, dials an endpoint (kube-proxy's userspace timeouts, moving
// on to the next endpoint after each failure), then copies bytes both ways with backpressure.
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { formatIp, type Family } from '../../model/ip.js';
import type { ServiceBackend } from '../../model/service.js';
import { formatBackend } from '../../services/json.js';
import type { Logger } from '../../observability/logger.js';
import { EndpointPicker } from './endpoint-picker.js';
import { errorText, plainAddress, type ProxySocket, type ProxySocketOptions, type ProxySocketStats } from './proxy-socket.js';

/** One dial attempt each, each to the next endpoint in turn: kube-proxy's EndpointDialTimeouts. */
export const DIAL_TIMEOUTS_MS: readonly number[] = [250, 500, 1000, 2000];

/**
 * How long a connection whose other side has closed may take to flush what is still queued for its
 * own peer before it is destroyed: a peer that stopped reading must not hold the socket forever.
 */
const FLUSH_GRACE_MS = 5000;

export interface TcpProxyOptions extends ProxySocketOptions {
  readonly dialTimeoutsMs?: readonly number[];
}

export class TcpProxy implements ProxySocket {
  readonly protocol = 'TCP';
  readonly family: Family;
  private portNumber = 0;
  private readonly picker: EndpointPicker;
  /** Client sockets from accept to close, and the backend sockets paired with them. */
  private readonly sockets = new Set<Socket>();
  private connections = 0;
  private closed = false;
  private readonly server: Server;
  private readonly name: string;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly dialTimeoutsMs: readonly number[];

  private constructor(opts: TcpProxyOptions) {
    this.family = opts.family;
    this.name = opts.name;
    this.log = opts.log;
    this.clock = opts.clock ?? Date.now;
    this.dialTimeoutsMs = opts.dialTimeoutsMs ?? DIAL_TIMEOUTS_MS;
    this.picker = new EndpointPicker(opts.random);
    this.picker.update(opts.endpoints, opts.affinityTimeoutMs);
    // allowHalfOpen: a client that shuts down its sending side still gets the whole answer.
    // pauseOnConnect: nothing is read from the client before a backend is there to take it.
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => void this.accept(client));
  }

  /** Binds and listens; rejects with the bind error (EADDRINUSE, ...). */
  static async open(opts: TcpProxyOptions): Promise<TcpProxy> {
    const proxy = new TcpProxy(opts);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen({ host: opts.address, port: opts.port, ipv6Only: opts.family === 6, exclusive: true }, () => {
        proxy.server.off('error', reject);
        resolve();
      });
    });
    proxy.server.on('error', (err) => proxy.log.warn({ proxy: proxy.name, err: errorText(err) }, 'TCP proxy socket error'));
    proxy.portNumber = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  get port(): number {
    return this.portNumber;
  }

  update(endpoints: readonly ServiceBackend[], affinityTimeoutMs: number | undefined): void {
    // Established connections to a removed endpoint are left to finish, as kube-proxy did.
    this.picker.update(endpoints, affinityTimeoutMs);
  }

  stats(): ProxySocketStats {
    let bufferedBytes = 0;
    for (const s of this.sockets) bufferedBytes += s.writableLength + s.readableLength;
    return { connections: this.connections, bufferedBytes };
  }

  async close(): Promise<void> {
    this.closed = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await stopped;
  }

  private async accept(client: Socket): Promise<void> {
    this.track(client);
    client.on('error', (err) => this.log.debug({ proxy: this.name, err: errorText(err) }, 'client connection error'));
    const clientIp = plainAddress(client.remoteAddress);
    let backend: Socket | undefined;
    for (const [attempt, timeoutMs] of this.dialTimeoutsMs.entries()) {
      const endpoint = this.picker.next(clientIp, this.clock(), attempt > 0);
      if (endpoint === undefined) break;
      try {
        backend = await dial(endpoint, this.family, timeoutMs);
        break;
      } catch (err) {
        this.log.debug({ proxy: this.name, endpoint: formatBackend(endpoint), err: errorText(err) }, 'dial failed, trying the next endpoint');
      }
      if (client.destroyed || this.closed) break;
    }
    if (backend === undefined || client.destroyed || this.closed) {
      backend?.destroy();
      // A reset, so the client sees ECONNREFUSED-like failure at once instead of an empty answer.
      if (!client.destroyed) client.resetAndDestroy();
      return;
    }
    this.track(backend);
    this.connections += 1;
    backend.once('close', () => (this.connections -= 1));
    splice(client, backend, this.log, this.name);
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }
}

/** A connection to `endpoint`, or an error when it refuses or does not answer within `timeoutMs`. */
export function dial(endpoint: ServiceBackend, family: Family, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: formatIp(endpoint.ip), port: endpoint.port, family, allowHalfOpen: true });
    // The event loop runs expired timers before it polls the sockets: after a stall, a connection
    // made in time may not have been seen yet. The timeout is judged after the poll (setImmediate).
    const timer = setTimeout(() => setImmediate(() => fail(new Error(`no answer within ${timeoutMs} ms`))), timeoutMs);
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/**
 * Copies both ways. `pipe` pauses the reading side while the writing side's buffer is full, so a
 * client that stops reading stops the backend through TCP flow control instead of filling memory.
 * A FIN is passed on as a FIN (half-close); an error ends both sockets.
 */
function splice(client: Socket, backend: Socket, log: Logger, name: string): void {
  backend.on('error', (err) => {
    log.debug({ proxy: name, err: errorText(err) }, 'backend connection error');
    client.destroy();
  });
  client.on('error', () => backend.destroy());
  client.once('close', () => flushThenDestroy(backend));
  backend.once('close', () => flushThenDestroy(client));
  client.pipe(backend);
  backend.pipe(client);
}

/** Ends a socket whose partner has closed: what is queued for it still goes out, then it is gone. */
function flushThenDestroy(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  const timer = setTimeout(() => socket.destroy(), FLUSH_GRACE_MS);
  timer.unref();
  socket.once('finish', () => {
    clearTimeout(timer);
    socket.destroy();
  });
  socket.once('close', () => clearTimeout(timer));
  socket.end();
}
