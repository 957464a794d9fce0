// Issue 11, item 1: the agent's HTTP listeners cannot be knocked over. Malformed requests, huge headers,
// slow and idle connections and concurrent SVG renders against a running agent: it stays up, its
// memory stays bounded, /healthz answers throughout, and /metrics and /graph are not on the network.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import { startMeshCluster } from '../harness/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('mesh integration tests', AGENT_TOOLS);
const ABUSE = fileURLToPath(new URL('../support/http-abuse.ts', import.meta.url));
const MALFORMED_REQUESTS = 3_000;

interface AbuseReport {
  readonly malformed: Record<string, number>;
  readonly slow: { readonly endedByServer: number; readonly stillOpen: number };
  readonly idle: { readonly keptToEnd: number };
  readonly svg: Record<string, number>;
  readonly probes: { readonly answered: number; readonly failed: number };
  readonly exposure: { readonly metricsOnHealthPort: number | 'failed'; readonly graphOnHealthPort: number | 'failed' };
}

/** The agent's resident memory in KiB: the node process in the node's namespace running `agent`. */
async function agentRssKib(netns: string): Promise<number> {
  const pids = (await runCommand('ip', ['netns', 'pids', netns])).stdout.split('\n').filter(Boolean);
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.split('\0').includes('agent')) continue;
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1]);
  }
  throw new Error(`no agent process in ${netns}`);
}

test('malformed requests, huge headers, slow and idle clients and concurrent SVG renders leave the agent up and /healthz answering', { skip }, async (t) => {
  const { cluster } = await startMeshCluster(t, { nodes: [{ name: 'a', location: 'east' }, { name: 'c', location: 'west' }], source: 'file', agentArgs: ['--resync-period', '5s'] });
  cluster.startAgent('a');
  cluster.startAgent('c');
  await cluster.waitReady();
  const node = cluster.sandbox.node('a');
  const rssBefore = await agentRssKib(node.netns);

  const out = await cluster.sandbox.exec(node, process.execPath, ['--import', 'tsx', ABUSE, '1107', '1108', String(MALFORMED_REQUESTS)], { timeoutMs: 120_000 });
  const report = JSON.parse(out.stdout) as AbuseReport;
  t.diagnostic(JSON.stringify(report));

  assert.ok(cluster.agents.get('a')?.exitCode === null && (await cluster.ready('a')), 'the agent is up and ready');
  assert.equal(report.probes.failed, 0, `/healthz answered ${report.probes.answered} probes and missed ${report.probes.failed}`);
  assert.ok(report.probes.answered > 10);
  const answered = Object.entries(report.malformed);
  assert.equal(answered.reduce((n, [, count]) => n + count, 0), MALFORMED_REQUESTS);
  for (const [result, count] of answered) {
    assert.ok(result === 'closed' || /^4\d\d$/.test(result) || result === '200', `${count} malformed requests got ${result}`); // 200: HTTP/0.9 and CRLF-tolerant forms
  }
  assert.ok((report.malformed['400'] ?? 0) > 0 && (report.malformed['405'] ?? 0) > 0 && (report.malformed['431'] ?? 0) > 0, 'bad requests are told so');
  assert.deepEqual(report.slow, { endedByServer: 100, stillOpen: 0 }, 'every slow client is cut off');
  assert.ok(report.idle.keptToEnd <= 16, `idle connections kept: ${report.idle.keptToEnd} (16 per client at most)`);
  assert.ok((report.svg['200'] ?? 0) >= 1, 'one SVG render is served');
  assert.deepEqual(Object.keys(report.svg).filter((code) => code !== '200' && code !== '429'), [], 'concurrent renders wait or are refused');
  assert.deepEqual(report.exposure, { metricsOnHealthPort: 404, graphOnHealthPort: 404 }, 'the health listener serves only health');

  const rssAfter = await agentRssKib(node.netns);
  assert.ok(rssAfter - rssBefore < 64 * 1024, `resident memory grew from ${rssBefore} KiB to ${rssAfter} KiB`);

  // The metrics listener is on loopback only: the node's own address does not reach it.
  const metrics = await cluster.sandbox.exec(node, 'curl', ['-s', '--max-time', '2', '-o', '/dev/null', '-w', '%{http_code}', `http://${node.underlayIP}:1108/metrics`], { allowFailure: true });
  assert.equal(metrics.stdout, '000', '/metrics is not served on the node address');
});
