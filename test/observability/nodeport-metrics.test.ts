// The eBPF counters as Prometheus metrics: every wl_np_stats counter under one of three
// wirelane_nodeport_* names, and the socket LB's wl_sock_stats as wirelane_sock_lb_refusals_total, read at the scrape from the reader the eBPF mode names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NODEPORT_STATS, type NodePortStat } from '../../src/dataplane/ebpf/nodeport.js';
import { AgentMetrics } from '../../src/observability/metrics.js';

const series = async (metrics: AgentMetrics): Promise<string[]> => (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('wirelane_nodeport_'));

test('every counter is exported at the scrape, each under one name and label', async () => {
  const metrics = new AgentMetrics();
  let reads = 0;
  const values = Object.fromEntries(NODEPORT_STATS.map((name, i) => [name, BigInt(i + 1)])) as Record<NodePortStat, bigint>;
  metrics.nodePort.readFrom(() => {
    reads++;
    return values;
  });
  const lines = await series(metrics);
  assert.ok(reads > 0, 'read when scraped');
  assert.equal(lines.length, NODEPORT_STATS.length, lines.join('\n'));
  assert.deepEqual(lines.map((l) => Number(l.split(' ')[1])).sort((a, b) => a - b), NODEPORT_STATS.map((_, i) => i + 1));
  assert.ok(lines.includes('wirelane_nodeport_drops_total{reason="snat_ports_exhausted"} 8'), lines.join('\n'));
  assert.ok(lines.includes('wirelane_nodeport_flows_total{event="confirmed"} 14'));
  assert.ok(lines.includes('wirelane_nodeport_packets_total{action="pass_not_syn"} 12'));

  // Later values replace earlier ones (they are the kernel's totals, not increments).
  values.dropSnatPorts = 100n;
  assert.ok((await series(metrics)).includes('wirelane_nodeport_drops_total{reason="snat_ports_exhausted"} 100'));
});

test('without a reader, or when reading fails, the scrape goes on', async () => {
  const metrics = new AgentMetrics();
  assert.deepEqual(await series(metrics), []);
  metrics.nodePort.readFrom(() => {
    throw new Error('pin gone');
  });
  assert.deepEqual(await series(metrics), []);
  assert.match(await metrics.registry.metrics(), /wirelane_nodes /);
});

test('the socket LB refusals are exported by reason', async () => {
  const metrics = new AgentMetrics();
  const lines = async () => (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('wirelane_sock_lb_refusals_total'));
  assert.deepEqual(await lines(), [], 'absent before the eBPF mode names a reader');
  metrics.sockLb.readFrom(() => ({ noEndpoint: 3n, noLocalEndpoint: 1n, noBackend: 0n }));
  assert.deepEqual(await lines(), [
    'wirelane_sock_lb_refusals_total{reason="no_endpoint"} 3',
    'wirelane_sock_lb_refusals_total{reason="no_local_endpoint"} 1',
    'wirelane_sock_lb_refusals_total{reason="no_backend"} 0',
  ]);
});
