// A UDP proxy socket: each client address (ip and port) is a flow with its own socket connected to
// the endpoint chosen for it; replies go back to the client from the proxy socket. A flow ends
// after `idleTimeoutMs` without a packet either way (kube-proxy's --udp-timeout) once it has been
// answered, after FIRST_REPLY_WAIT_MS without a packet before that, when its endpoint is removed, or when
// the endpoint refuses it.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { formatIp, type Family } from '../../model/ip.js';
import type { ServiceBackend } from '../../model/service.js';
import { formatBackend } from '../../services/json.js';
import type { Logger } from '../../observability/logger.js';
import { EndpointPicker } from './endpoint-picker.js';
import { errorText, plainAddress, type ProxySocket, type ProxySocketOptions, type ProxySocketStats } from './proxy-socket.js';

export const DEFAULT_UDP_IDLE_TIMEOUT_MS = 250;

/**
 * How long a flow waits for its first reply (at least the idle timeout). Waiting is not idling: an
 * endpoint in another location may answer only after a WireGuard handshake (queued packets, then the
 * reply), a DNS server only after its upstream; a flow closed at the idle timeout drops such a reply,
 * which the kernel modes (an unreplied conntrack entry lives 30 s) deliver. 5 s is a resolver's own
 * retry time (glibc's): no one waits for a later answer. kubernetes/kubernetes#14939 proposed this split.
 */
export const FIRST_REPLY_WAIT_MS = 5000;

/** Datagrams held for a flow whose socket is still connecting; more are dropped, as a full queue would. */
const MAX_PENDING = 64;

export interface UdpProxyOptions extends ProxySocketOptions {
  readonly idleTimeoutMs?: number;
  /** Tests: another FIRST_REPLY_WAIT_MS. */
  readonly firstReplyWaitMs?: number;
}

interface Flow {
  readonly clientIp: string;
  readonly endpoint: string;
  readonly socket: Socket;
  /** The first-reply wait until the first reply, then the idle timeout. */
  idle: NodeJS.Timeout;
  /** Datagrams either way so far: what the idle timer checks once the sockets are read. */
  seen: number;
  answered: boolean;
  /** Datagrams received before the flow's socket finished connecting; undefined once connected. */
  pending: Buffer[] | undefined;
}

export class UdpProxy implements ProxySocket {
  readonly protocol = 'UDP';
  readonly family: Family;
  private portNumber = 0;
  private readonly socket: Socket;
  private readonly picker: EndpointPicker;
  private readonly flows = new Map<string, Flow>();
  private readonly name: string;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly idleTimeoutMs: number;
  private readonly firstReplyWaitMs: number;

  private constructor(opts: UdpProxyOptions) {
    this.family = opts.family;
    this.name = opts.name;
    this.log = opts.log;
    this.clock = opts.clock ?? Date.now;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS;
    this.firstReplyWaitMs = Math.max(this.idleTimeoutMs, opts.firstReplyWaitMs ?? FIRST_REPLY_WAIT_MS);
    this.picker = new EndpointPicker(opts.random);
    this.picker.update(opts.endpoints, opts.affinityTimeoutMs);
    this.socket = createSocket({ type: opts.family === 4 ? 'udp4' : 'udp6', ipv6Only: opts.family === 6 });
    this.socket.on('message', (msg, from) => this.fromClient(msg, from));
  }

  /** Binds; rejects with the bind error (EADDRINUSE, ...). */
  static async open(opts: UdpProxyOptions): Promise<UdpProxy> {
    const proxy = new UdpProxy(opts);
    await new Promise<void>((resolve, reject) => {
      proxy.socket.once('error', reject);
      proxy.socket.bind({ address: opts.address, port: opts.port, exclusive: true }, () => {
        proxy.socket.off('error', reject);
        resolve();
      });
    });
    proxy.socket.on('error', (err) => proxy.log.warn({ proxy: proxy.name, err: errorText(err) }, 'UDP proxy socket error'));
    proxy.portNumber = proxy.socket.address().port;
    return proxy;
  }

  get port(): number {
    return this.portNumber;
  }

  update(endpoints: readonly ServiceBackend[], affinityTimeoutMs: number | undefined): void {
    this.picker.update(endpoints, affinityTimeoutMs);
    // A flow is a client's whole conversation (a DNS client reuses its socket): one pinned to a
    // removed endpoint would never move, so it ends and the next datagram picks again.
    for (const [key, flow] of this.flows) if (!this.picker.has(flow.endpoint)) this.endFlow(key, flow);
  }

  stats(): ProxySocketStats {
    let bufferedBytes = 0;
    for (const flow of this.flows.values()) for (const b of flow.pending ?? []) bufferedBytes += b.length;
    return { connections: this.flows.size, bufferedBytes };
  }

  async close(): Promise<void> {
    for (const [key, flow] of this.flows) this.endFlow(key, flow);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private fromClient(msg: Buffer, from: RemoteInfo): void {
    const key = `${from.address}|${from.port}`;
    let flow = this.flows.get(key);
    if (flow === undefined) {
      const clientIp = plainAddress(from.address);
      const endpoint = this.picker.next(clientIp, this.clock());
      // No endpoint: dropped. The portal rules send new flows to a REJECT instead of here.
      if (endpoint === undefined) return;
      flow = this.openFlow(key, clientIp, from, endpoint);
    }
    flow.seen++;
    flow.idle.refresh();
    if (flow.pending === undefined) flow.socket.send(msg);
    else if (flow.pending.length < MAX_PENDING) flow.pending.push(msg);
  }

  private openFlow(key: string, clientIp: string, client: RemoteInfo, endpoint: ServiceBackend): Flow {
    const socket = createSocket(this.family === 4 ? 'udp4' : 'udp6');
    const arm = (ms: number): NodeJS.Timeout => setTimeout(() => this.expire(key, flow), ms).unref();
    const flow: Flow = { clientIp, endpoint: formatBackend(endpoint), socket, idle: arm(this.firstReplyWaitMs), seen: 0, answered: false, pending: [] };
    this.flows.set(key, flow);
    socket.on('message', (reply) => {
      flow.seen++;
      if (flow.answered) flow.idle.refresh();
      else {
        flow.answered = true;
        clearTimeout(flow.idle);
        flow.idle = arm(this.idleTimeoutMs);
      }
      this.socket.send(reply, client.port, client.address);
    });
    socket.on('error', (err) => {
      // ECONNREFUSED: the endpoint's port is closed. The client's next datagram starts a new flow,
      // and without its affinity it may land elsewhere.
      this.log.debug({ proxy: this.name, endpoint: flow.endpoint, err: errorText(err) }, 'UDP flow failed');
      this.picker.forget(clientIp);
      this.endFlow(key, flow);
    });
    socket.connect(endpoint.port, formatIp(endpoint.ip), (err?: Error) => {
      // The flow may have ended (idle, endpoint removed) while its socket was connecting.
      if (this.flows.get(key) !== flow) return;
      if (err !== undefined && err !== null) {
        this.log.debug({ proxy: this.name, endpoint: flow.endpoint, err: errorText(err) }, 'UDP flow could not connect');
        this.endFlow(key, flow);
        return;
      }
      const queued = flow.pending ?? [];
      flow.pending = undefined;
      for (const msg of queued) socket.send(msg);
    });
    return flow;
  }

  /**
   * The idle timer fired. The event loop runs expired timers before it polls the sockets, so after
   * a stall a reply that arrived in time may still be unread: the flow ends only if nothing was
   * seen once the poll has run (setImmediate). A datagram seen re-armed the timer.
   */
  private expire(key: string, flow: Flow): void {
    const seen = flow.seen;
    setImmediate(() => {
      if (flow.seen === seen) this.endFlow(key, flow);
    });
  }

  private endFlow(key: string, flow: Flow): void {
    clearTimeout(flow.idle);
    if (this.flows.get(key) === flow) this.flows.delete(key);
    try {
      flow.socket.close();
    } catch {
      // Already closed (an error and an idle timeout can both end a flow).
    }
  }
}
