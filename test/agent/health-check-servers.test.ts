import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { HealthCheckServers, healthChecksOf } from '../../src/agent/health-check-servers.js';
import { parseIp } from '../../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../../src/model/service.js';

const backend = (ip: string, local: boolean): ServiceBackend => ({ ip: parseIp(ip), port: 8080, local });

function mapWith(healthCheckNodePort: number, endpoints: ServiceBackend[]): ServiceMap {
  const port = (portName: string): ServicePort => ({
    service: 'shop/web', portName, protocol: 'TCP', clusterIPs: [parseIp('10.96.0.20')], port: 80, externalIPs: [], loadBalancerIPs: [],
    loadBalancerSourceRanges: [], healthCheckNodePort, externalPolicyLocal: true, internalPolicyLocal: false,
    clusterEndpoints: endpoints, internalEndpoints: endpoints, externalEndpoints: endpoints.filter((e) => e.local),
  });
  return { node: 'n1', nodePortAddresses: [], clusterCIDRs: [], servicePorts: [port('http'), port('https')] };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('local endpoints are counted once per address across the service ports', () => {
  assert.deepEqual(healthChecksOf(mapWith(30000, [backend('10.244.0.5', true), backend('10.244.0.6', true), backend('10.244.1.5', false)])), [
    { port: 30000, service: 'shop/web', localEndpoints: 2 },
  ]);
});

test('the health check answers 200 with local endpoints, 503 without, and closes with the service', async (t) => {
  const port = await freePort();
  const servers = new HealthCheckServers(() => true, (message) => assert.fail(message));
  t.after(() => servers.close());
  const get = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`);
    return { status: res.status, weight: res.headers.get('x-load-balancing-endpoint-weight'), body: await res.json() };
  };
  assert.equal((await servers.apply(mapWith(port, [backend('10.244.0.5', true)]))).opened, 1);
  assert.deepEqual(await get(), { status: 200, weight: '1', body: { service: { namespace: 'shop', name: 'web' }, localEndpoints: 1, serviceProxyHealthy: true } });
  await servers.apply(mapWith(port, [backend('10.244.1.5', false)]));
  assert.deepEqual(await get(), { status: 503, weight: '0', body: { service: { namespace: 'shop', name: 'web' }, localEndpoints: 0, serviceProxyHealthy: true } });
  assert.equal((await servers.apply({ node: 'n1', nodePortAddresses: [], clusterCIDRs: [], servicePorts: [] })).closed, 1);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/`));
});
