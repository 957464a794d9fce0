// Benchmark: the mesh core (topology + the local WireGuard configuration) at 500, 1,000 and 5,000
// nodes over 10% as many locations, with allowed-location IPs, Peers and roaming leaders.
// Run: node --import tsx bench/mesh.ts   (prints a table, writes bench/results/mesh.json)
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { topologyToJSON } from '../src/mesh/json.js';
import { computeTopology } from '../src/mesh/topology.js';
import type { MeshInput, MeshOptions } from '../src/mesh/types.js';
import { nodeConfig } from '../src/mesh/wireguard.js';
import { type Endpoint, parseEndpoint } from '../src/model/endpoint.js';
import { parseCidr } from '../src/model/ip.js';
import { type WireGuardKey, parseKey } from '../src/model/key.js';
import type { Granularity, MeshNode, MeshPeer } from '../src/model/mesh.js';

const NOW = 1_700_000_000;
/** The three sizes from the brief (as the leader of location 0), plus the other views at 5,000. */
const SCENARIOS: { view: string; nodes: number; hostname: string; granularity: Granularity }[] = [
  { view: 'location leader', nodes: 500, hostname: 'node-0-0', granularity: 'location' },
  { view: 'location leader', nodes: 1_000, hostname: 'node-0-0', granularity: 'location' },
  { view: 'location leader', nodes: 5_000, hostname: 'node-0-0', granularity: 'location' },
  { view: 'location non-leader', nodes: 5_000, hostname: 'node-0-1', granularity: 'location' },
  { view: 'cross', nodes: 5_000, hostname: 'node-0-0', granularity: 'cross' },
  { view: 'full', nodes: 5_000, hostname: 'node-0-0', granularity: 'full' },
];
const WARMUP = 5;
const RUNS = 30;

const keyOf = (name: string): WireGuardKey => parseKey(createHash('sha256').update(name).digest('base64'));

/** n nodes, 10 per location; every location's first node has a public endpoint and leads it. */
function cluster(n: number): MeshInput {
  const locations = n / 10;
  const roaming = new Map<WireGuardKey, Endpoint>();
  for (let l = 0; l < locations; l += 10) roaming.set(keyOf(`node-${l}-0`), parseEndpoint(`198.51.${l >> 8}.${l & 255}:40000`));
  const nodes: MeshNode[] = [];
  for (let i = 0; i < n; i++) {
    const l = Math.floor(i / 10);
    const j = i % 10;
    const ip = `10.${100 + (l >> 8)}.${l & 255}.${j + 1}`;
    // Every 5th location reaches a /24 outside the cluster; every 50th claims one already claimed.
    const allowed = j === 0 && l % 5 === 0 ? [`172.${16 + (l >> 8)}.${l % 50 === 0 ? 0 : l & 255}.0/24`] : [];
    nodes.push({
      name: `node-${l}-${j}`,
      location: `loc-${l}`,
      endpoint: parseEndpoint(j === 0 ? `203.0.${l >> 8}.${l & 255}:51820` : `${ip}:51820`),
      internalIP: parseCidr(`${ip}/24`),
      publicKey: keyOf(`node-${l}-${j}`),
      podCIDRs: [parseCidr(`10.${i >> 8}.${i & 255}.0/24`)],
      lastSeen: NOW,
      leader: false,
      persistentKeepalive: j === 0 && l % 10 === 0 ? 25 : 0,
      allowedLocationIPs: allowed.map(parseCidr),
      discoveredEndpoints: i === 0 ? roaming : new Map(),
    });
  }
  const peers: MeshPeer[] = [];
  for (let p = 0; p < Math.max(10, n / 50); p++) {
    // Every 10th Peer also claims its predecessor's address, to exercise deduplication.
    const ips = [`10.250.${p >> 8}.${p & 255}/32`, ...(p % 10 === 9 ? [`10.250.${(p - 1) >> 8}.${(p - 1) & 255}/32`] : [])];
    peers.push({ name: `peer-${p}`, allowedIPs: ips.map(parseCidr), publicKey: keyOf(`peer-${p}`), persistentKeepalive: p % 3 === 0 ? 25 : 0 });
  }
  return { nodes, peers };
}

const opts: MeshOptions = {
  hostname: 'node-0-0',
  granularity: 'location',
  subnets: [parseCidr('10.4.0.0/16')],
  port: 51820,
  encapsulate: 'crosssubnet',
  local: true,
  wireguardDevice: 'wirelane0',
  tunnelDevice: 'wirelane.vxlan',
  underlayDevice: 'eth0',
  now: NOW,
  resyncPeriodSeconds: 30,
};

function timed(runs: number, body: () => void): number[] {
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    body();
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b);
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;

interface Result {
  view: string;
  nodes: number;
  locations: number;
  peers: number;
  routes: number;
  wireguardPeers: number;
  medianMs: number;
  p90Ms: number;
  minMs: number;
  jsonMedianMs: number;
  /** Leader rows: median / (n log2 n) relative to 500 nodes; ≤ 1 means no worse than n log n. */
  nLogNRatio: number | null;
}

const results: Result[] = [];
const inputs = new Map<number, MeshInput>();
for (const scenario of SCENARIOS) {
  const n = scenario.nodes;
  const input = inputs.get(n) ?? cluster(n);
  inputs.set(n, input);
  const options: MeshOptions = { ...opts, hostname: scenario.hostname, granularity: scenario.granularity };
  let routes = 0;
  let wireguardPeers = 0;
  const run = (): void => {
    const t = computeTopology(input, options);
    const config = nodeConfig(t);
    routes = t.routes.length;
    wireguardPeers = config.peers.length;
  };
  timed(WARMUP, run);
  const times = timed(RUNS, run);
  const t = computeTopology(input, options);
  const json = timed(RUNS, () => JSON.stringify(topologyToJSON(t)));
  results.push({
    view: scenario.view,
    nodes: n,
    locations: n / 10,
    peers: input.peers.length,
    routes,
    wireguardPeers,
    medianMs: quantile(times, 0.5),
    p90Ms: quantile(times, 0.9),
    minMs: quantile(times, 0),
    jsonMedianMs: quantile(json, 0.5),
    nLogNRatio: null,
  });
}
const perNLogN = (r: Result): number => r.medianMs / (r.nodes * Math.log2(r.nodes));
const leaders = results.filter((r) => r.view === 'location leader');
for (const r of leaders) r.nLogNRatio = perNLogN(r) / perNLogN(leaders[0] as Result);

console.log('mesh core: computeTopology + nodeConfig (--local, crosssubnet); 10 nodes per location');
console.log('view                 nodes  locations  peers  routes  wg-peers  median ms  p90 ms  min ms  json ms  vs n·log n');
for (const r of results) {
  console.log(
    [
      r.view.padEnd(20),
      String(r.nodes).padStart(5),
      String(r.locations).padStart(10),
      String(r.peers).padStart(6),
      String(r.routes).padStart(7),
      String(r.wireguardPeers).padStart(9),
      r.medianMs.toFixed(2).padStart(10),
      r.p90Ms.toFixed(2).padStart(7),
      r.minMs.toFixed(2).padStart(7),
      r.jsonMedianMs.toFixed(2).padStart(8),
      (r.nLogNRatio === null ? '' : r.nLogNRatio.toFixed(2)).padStart(11),
    ].join(' '),
  );
}

const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'mesh.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ benchmark: 'mesh', node: process.version, runs: RUNS, results }, null, 2)}\n`);
console.log(`wrote ${out}`);
