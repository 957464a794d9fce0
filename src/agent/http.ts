// The agent's HTTP endpoints, split by audience as kube-proxy splits them (healthz on every address,
// metrics on loopback): the kubelet's probes (/healthz, /readyz) on --listen, which is reachable from
// the network; /metrics, /graph and /status (internal addresses, Peer endpoints, WireGuard peers) on
// --metrics-listen, loopback unless the operator exposes it. Both addresses the same: one server
// answers everything.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.js';
import { errorLine } from '../observability/first-line.js';
import type { AgentMetrics } from '../observability/metrics.js';
import { closeServer, createBoundedServer, listen, type ListenAddress, sameListenAddress } from './http-server.js';
import { type AgentStatus, type Readiness, readinessOf } from './status.js';

export interface AgentHttpState {
  readonly metrics: AgentMetrics;
  /** Whether every reconcile loop keeps up, with the body to say so (sync-health.ts). */
  health(): { readonly healthy: boolean; readonly body: string };
  /** True after the first successful apply. */
  ready(): boolean;
  /** The cluster source's resources that have not synced once, each as one line; empty when all have. */
  unsyncedResources(): readonly string[];
  /** The current mesh as DOT, or undefined before the first topology. */
  graph(): string | undefined;
  /** Renders DOT to SVG (Graphviz). */
  renderSvg(dot: string): Promise<string>;
  /** The /status document, readiness as /readyz judges it. */
  status(readiness: Readiness): Promise<AgentStatus>;
}

export interface AgentHttpAddresses {
  readonly health: ListenAddress;
  readonly metrics: ListenAddress;
}

type Reply = (code: number, type: string, body: string, headers?: Record<string, string>) => void;
type Route = (url: URL, reply: Reply) => Promise<void> | void;

export interface AgentHttp {
  /** Where each server listens (the kernel's port for port 0), health's first. */
  addresses(): { host: string; port: number }[];
  close(): Promise<void>;
}

export async function startHttpServers(addresses: AgentHttpAddresses, state: AgentHttpState, log: Logger): Promise<AgentHttp> {
  const health = healthRoutes(state);
  const operator = { ...health, ...operatorRoutes(state) };
  const plan = sameListenAddress(addresses.health, addresses.metrics)
    ? [{ address: addresses.health, routes: operator }]
    : [
        { address: addresses.health, routes: health },
        { address: addresses.metrics, routes: operator },
      ];
  const servers: Server[] = [];
  try {
    for (const { address, routes } of plan) {
      const server = createBoundedServer((req, res) => serve(routes, req, res, log));
      await listen(server, address, (err) => log.error(`http ${address.host ?? '*'}:${address.port}: ${err.message}`));
      servers.push(server);
    }
  } catch (err) {
    await Promise.all(servers.map(closeServer));
    throw err;
  }
  return {
    addresses: () => servers.map((server) => server.address() as AddressInfo).map(({ address, port }) => ({ host: address, port })),
    close: () => Promise.all(servers.map(closeServer)).then(() => undefined),
  };
}

function serve(routes: Record<string, Route>, req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const reply: Reply = (code, type, body, headers = {}) => {
    if (res.headersSent) return;
    res.writeHead(code, { 'content-type': type, 'x-content-type-options': 'nosniff', ...headers }).end(req.method === 'HEAD' ? undefined : body);
  };
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://agent');
  } catch {
    return reply(400, 'text/plain', 'bad request\n');
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain', 'method not allowed\n', { allow: 'GET, HEAD' });
  const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
  if (route === undefined) return reply(404, 'text/plain', 'not found\n');
  Promise.resolve()
    .then(() => route(url, reply))
    .catch((err: unknown) => {
      // The message may hold paths or command output: it goes to the log, not to the client.
      log.error(`http ${url.pathname}: ${errorLine(err)}`);
      reply(500, 'text/plain', 'internal error\n');
    });
}

function healthRoutes(state: AgentHttpState): Record<string, Route> {
  return {
    '/healthz': (_url, reply) => {
      const { healthy, body } = state.health();
      reply(healthy ? 200 : 503, 'text/plain', body);
    },
    '/readyz': (_url, reply) => {
      const readiness = readinessOfState(state);
      if (!readiness.ready) return reply(503, 'text/plain', `not ready: ${readiness.reason}\n`);
      reply(200, 'text/plain', 'ok\n');
    },
  };
}

function operatorRoutes(state: AgentHttpState): Record<string, Route> {
  const svg = new SvgRenderer(state.renderSvg);
  return {
    '/metrics': async (_url, reply) => reply(200, state.metrics.registry.contentType, await state.metrics.registry.metrics()),
    // 200 also when not ready: the document says why, and `wirelane status` shows it before failing.
    '/status': async (_url, reply) => reply(200, 'application/json', `${JSON.stringify(await state.status(readinessOfState(state)), null, 2)}\n`),
    '/graph': async (url, reply) => {
      const dot = state.graph();
      if (dot === undefined) return reply(503, 'text/plain', 'no topology yet\n');
      const format = url.searchParams.get('format') ?? 'dot';
      if (format === 'dot') return reply(200, 'text/vnd.graphviz', dot);
      if (format !== 'svg') return reply(400, 'text/plain', 'format is not dot or svg\n');
      const rendered = await svg.render(dot);
      if (rendered === undefined) return reply(429, 'text/plain', 'a graph is being rendered: retry\n', { 'retry-after': '1' });
      reply(200, 'image/svg+xml', rendered);
    },
  };
}

function readinessOfState(state: AgentHttpState): Readiness {
  return readinessOf(state.unsyncedResources(), state.ready());
}

/** One `dot` process at a time (each costs a process and its memory); the last result is reused. */
export class SvgRenderer {
  #busy = false;
  #last: { readonly dot: string; readonly svg: string } | undefined;

  constructor(private readonly renderSvg: (dot: string) => Promise<string>) {}

  /** The SVG, or undefined while another render runs. */
  async render(dot: string): Promise<string | undefined> {
    if (this.#last?.dot === dot) return this.#last.svg;
    if (this.#busy) return undefined;
    this.#busy = true;
    try {
      const svg = await this.renderSvg(dot);
      this.#last = { dot, svg };
      return svg;
    } finally {
      this.#busy = false;
    }
  }
}
