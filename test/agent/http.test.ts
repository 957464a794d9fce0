// The agent's HTTP handlers in-process: what each listener serves, and what an error tells the client.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SvgRenderer, startHttpServers } from '../../src/agent/http.js';
import type { AgentStatus } from '../../src/agent/status.js';
import { createLogger } from '../../src/observability/logger.js';
import { AgentMetrics } from '../../src/observability/metrics.js';

test('one SVG render at a time: a second request meanwhile is refused, the same graph again is the last result', async () => {
  let finish: (svg: string) => void = () => {};
  let renders = 0;
  const renderer = new SvgRenderer((dot) => {
    renders++;
    return new Promise((resolve) => (finish = (svg) => resolve(`${svg} of ${dot}`)));
  });
  const first = renderer.render('digraph a {}');
  assert.equal(await renderer.render('digraph b {}'), undefined);
  finish('<svg/>');
  assert.equal(await first, '<svg/> of digraph a {}');
  assert.equal(await renderer.render('digraph a {}'), '<svg/> of digraph a {}');
  assert.equal(renders, 1);
});

test('the health listener serves only health; an internal error is logged, not echoed', async (t) => {
  const lines: string[] = [];
  const log = createLogger('error');
  log.error = ((message: string) => void lines.push(message)) as typeof log.error;
  // Port 0 on two loopback addresses: two servers, each on a port of the kernel's choosing.
  const http = await startHttpServers(
    { health: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.2', port: 0 } },
    {
      metrics: new AgentMetrics(),
      health: () => ({ healthy: true, body: 'ok\n' }),
      ready: () => true,
      unsyncedResources: () => [],
      graph: () => {
        throw new Error('/var/lib/secret: permission denied\nstack');
      },
      renderSvg: async () => '<svg/>',
      status: async (readiness) => ({ node: 'a', ready: readiness.ready }) as unknown as AgentStatus, // only what the route passes on
    },
    log,
  );
  t.after(() => http.close());
  const [health, metrics] = http.addresses();
  const get = async (address: { host: string; port: number } | undefined, path: string, init?: RequestInit) => {
    const res = await fetch(`http://${address!.host}:${address!.port}${path}`, init);
    return `${res.status} ${await res.text()}`;
  };
  assert.equal(await get(health, '/healthz'), '200 ok\n');
  assert.equal(await get(health, '/metrics'), '404 not found\n');
  assert.equal(await get(health, '/healthz', { method: 'POST' }), '405 method not allowed\n');
  assert.match(await get(metrics, '/metrics'), /^200 [\s\S]*wirelane_/);
  assert.equal(await get(metrics, '/graph'), '500 internal error\n');
  // /status lists WireGuard peers and their endpoints: the loopback listener's, never the probes'.
  assert.equal(await get(health, '/status'), '404 not found\n');
  assert.equal(await get(metrics, '/status'), '200 {\n  "node": "a",\n  "ready": true\n}\n');
  assert.deepEqual(lines, ['http /graph: /var/lib/secret: permission denied']);
});
