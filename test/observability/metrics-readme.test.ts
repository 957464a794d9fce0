// The README's metric table names every metric the agent registers, with its type and label names,
// and nothing else: the registry is built as runAgent builds it (one AgentMetrics).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AgentMetrics } from '../../src/observability/metrics.js';

interface Described {
  readonly type: string;
  readonly labels: readonly string[];
}

/** The rows of the table under README's "### Metrics": name → type and label names. */
function readmeMetrics(): Map<string, Described> {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n### Metrics\n');
  assert.ok(start >= 0, 'README has a "### Metrics" section');
  const end = readme.slice(start + 1).search(/\n#{2,3} /);
  const section = end < 0 ? readme.slice(start) : readme.slice(start, start + 1 + end);
  const rows = new Map<string, Described>();
  for (const line of section.split('\n')) {
    const m = /^\| `(wirelane_[a-z_]+)` \| (\w+) \|([^|]*)\|/.exec(line);
    if (!m) continue;
    assert.ok(!rows.has(m[1] as string), `${m[1]} is listed once`);
    // Label names are the backticked words outside parentheses (those hold the values).
    const labels = [...(m[3] as string).replace(/\([^)]*\)/g, '').matchAll(/`([a-z_]+)`/g)].map((l) => l[1] as string);
    rows.set(m[1] as string, { type: m[2] as string, labels });
  }
  return rows;
}

function registered(): Map<string, Described> {
  const out = new Map<string, Described>();
  for (const metric of new AgentMetrics().registry.getMetricsAsArray()) {
    // prom-client's MetricObject type omits the fields every metric has at run time.
    const { name, type, labelNames } = metric as unknown as { name: string; type: string; labelNames?: readonly string[] };
    if (name.startsWith('wirelane_')) out.set(name, { type, labels: [...(labelNames ?? [])] });
  }
  return out;
}

test("README's metric table and the agent's registry name the same metrics, types and labels", () => {
  const readme = readmeMetrics();
  const registry = registered();
  assert.deepEqual([...readme.keys()].filter((n) => !registry.has(n)), [], 'in the README but not registered');
  assert.deepEqual([...registry.keys()].filter((n) => !readme.has(n)), [], 'registered but not in the README');
  for (const [name, described] of registry) assert.deepEqual(readme.get(name), described, name);
});

test("the kube-proxy names users alert on are among them", () => {
  const registry = registered();
  for (const name of ['sync_proxy_rules_duration_seconds', 'sync_proxy_rules_last_timestamp_seconds', 'sync_proxy_rules_last_queued_timestamp_seconds', 'network_programming_duration_seconds']) {
    assert.ok(registry.has(`wirelane_${name}`), name);
  }
});
