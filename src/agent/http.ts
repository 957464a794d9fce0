// The agent's HTTP endpoint: /metrics, /healthz, /readyz and /graph?format=dot|svg.
import { createServer, type Server } from 'node:http';
import type { AgentMetrics } from '../observability/metrics.js';

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
}

/** Parses `--listen`: `:1107`, `127.0.0.1:1107`, `[::1]:1107`. */
export function parseListenAddress(text: string): { host: string | undefined; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? (m[2] === '' ? undefined : m[2]);
  return { host, port };
}

export async function startHttpServer(listen: { host: string | undefined; port: number }, state: AgentHttpState): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const reply = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'content-type': type }).end(body);
    };
    const handle = async (): Promise<void> => {
      switch (url.pathname) {
        case '/metrics':
          return reply(200, state.metrics.registry.contentType, await state.metrics.registry.metrics());
        case '/healthz': {
          const { healthy, body } = state.health();
          return reply(healthy ? 200 : 503, 'text/plain', body);
        }
        case '/readyz': {
          const unsynced = state.unsyncedResources();
          if (unsynced.length > 0) return reply(503, 'text/plain', `not ready: not synced: ${unsynced.join('; ')}\n`);
          return state.ready() ? reply(200, 'text/plain', 'ok\n') : reply(503, 'text/plain', 'not ready: no successful apply yet\n');
        }
        case '/graph': {
          const dot = state.graph();
          if (dot === undefined) return reply(503, 'text/plain', 'no topology yet\n');
          const format = url.searchParams.get('format') ?? 'dot';
          if (format === 'dot') return reply(200, 'text/vnd.graphviz', dot);
          if (format === 'svg') return reply(200, 'image/svg+xml', await state.renderSvg(dot));
          return reply(400, 'text/plain', `format "${format}" is not dot or svg\n`);
        }
        default:
          return reply(404, 'text/plain', 'not found\n');
      }
    };
    handle().catch((err: unknown) => reply(500, 'text/plain', `${(err as Error).message}\n`));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, resolve);
  });
  return server;
}
