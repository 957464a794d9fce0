// The cluster commands against the live cluster (--kubeconfig, the test API server) compute what they
// compute from the same objects in a cluster file: the same output, the same warnings. Live nodes are
// judged by their last-seen heartbeat; a list that fails is an error naming the resource. Runs the
// compiled CLI (the setup script builds dist/), asynchronously: the API server runs in this process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { type KubeApiServer, type KubeObject, type ResourceName, kubeconfigYaml, startKubeApiServer } from '../kube-apiserver/index.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function wirelane(...args: string[]): Promise<Run> {
  const env = { ...process.env };
  delete env['KUBECONFIG'];
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath(), ...args], { encoding: 'utf8', env }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const now = Math.floor(Date.now() / 1000);

function node(name: string, region: string, i: number, extra: Record<string, string> = {}, lastSeen = now): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: { 'topology.kubernetes.io/region': region, 'topology.kubernetes.io/zone': `z${region}` },
      annotations: {
        'wirelane.io/key': KEYS[i] as string,
        'wirelane.io/endpoint': `203.0.113.${i + 1}:51820`,
        'wirelane.io/internal-ip': `192.168.${region}.${i + 1}/24`,
        'wirelane.io/last-seen': String(lastSeen),
        ...extra,
      },
    },
    spec: { podCIDR: `10.2.${i + 1}.0/24` },
    status: { addresses: [{ type: 'InternalIP', address: `192.168.${region}.${i + 1}` }] },
  };
}

const KEYS = [
  '/EUWYtbi97yQzjFVDFrLwIOL21y3o6CKnd2qpU7IcGI=',
  '3d3gC3bZuBAzQTlHC/YzbNyfQdopThnCYXyLEK6bniI=',
  'FAfRfJMz9QOGUmsFFcgFEFOq4OFjZxmouZoUGmgUMRM=',
  'gZScMHcUMkhwkePfnrS0zKUlZrRA6OUYMxkGYBge0mE=',
  'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=',
];

const peer = (name: string, publicKey: string, ip: string): KubeObject => ({
  apiVersion: 'wirelane.io/v1alpha1',
  kind: 'Peer',
  metadata: { name },
  spec: { publicKey, allowedIPs: [ip], persistentKeepalive: 25 },
});

const service = (name: string, clusterIP: string, port: number): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { clusterIP, ports: [{ name: 'http', protocol: 'TCP', port, targetPort: 8080 }] },
});

const slice = (name: string, serviceName: string, address: string): KubeObject => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: { name, namespace: 'shop', labels: { 'kubernetes.io/service-name': serviceName } },
  addressType: 'IPv4',
  ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
  endpoints: [{ addresses: [address], conditions: { ready: true }, nodeName: 'a' }],
});

// One malformed object or value of each kind: a Node annotation, a Peer, a Service, an EndpointSlice.
const OBJECTS: readonly [ResourceName, KubeObject][] = [
  ['nodes', node('a', '1', 0, { 'wirelane.io/leader': '' })],
  ['nodes', node('b', '1', 1, { 'wirelane.io/persistent-keepalive': 'often' })],
  ['nodes', node('c', '2', 2)],
  ['peers', peer('laptop', KEYS[3] as string, '10.5.0.1/32')],
  ['peers', peer('broken', 'not-a-key', '10.5.0.2/32')],
  ['services', service('web', '10.96.0.20', 80)],
  ['services', service('api', '10.96.0.21', 8080)],
  ['services', service('bad', '10.96.0.300', 81)],
  ['endpointslices', slice('web-1', 'web', '10.2.1.7')],
  ['endpointslices', slice('api-1', 'api', '10.2.1.8')],
  ['endpointslices', slice('web-2', 'web', '10.2.1.300')],
];

// A node whose agent stopped a day ago. Its name sorts first, so a view that needs "any node" must
// pass it over. In a file it would count as fresh: the mesh views' file leaves it out.
const STALE = node('0-gone', '3', 4, {}, now - 86_400);

// The live mesh views judge heartbeats by agents that resync hourly: the fresh nodes' last-seen
// (written when the test started) stays fresh however slowly the machine runs, the stale one not.
const HOURLY = ['--resync-period', '1h'];

describe('the cluster commands against the live cluster', () => {
  let server: KubeApiServer;
  let dir = '';
  let kubeconfig = '';
  let file = '';
  let fileWithStale = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wirelane-cli-live-'));
    server = await startKubeApiServer();
    kubeconfig = join(dir, 'kubeconfig');
    await server.writeKubeconfig(kubeconfig);
    for (const [resource, object] of OBJECTS) server.create(resource, structuredClone(object));
    server.create('nodes', structuredClone(STALE));
    file = join(dir, 'cluster.yaml');
    await writeFile(file, OBJECTS.map(([, object]) => stringify(object)).join('---\n'));
    fileWithStale = join(dir, 'cluster-with-stale.yaml');
    await writeFile(fileWithStale, [...OBJECTS.map(([, object]) => object), STALE].map((object) => stringify(object)).join('---\n'));
  });

  after(async () => {
    await server?.close();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  /** The file's warnings as the live ones read: without the file and document in front. */
  const unlocated = (stderr: string): string[] =>
    stderr
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.replace(`warning: ${file}: `, 'warning: ').replace(`warning: ${fileWithStale}: `, 'warning: ').replace(/^wirelane: warning: document \d+ \(\w+ "[^"]+"\): /, 'wirelane: warning: '))
      .sort();

  // The service map counts every Node's pod CIDR, a stale node's too (as the agent does).
  const views: [string, string[], 'mesh' | 'services'][] = [
    ['topology', ['topology', '--node', 'a'], 'mesh'],
    ['showconf node', ['showconf', 'node', 'a'], 'mesh'],
    ['showconf node --as-peer', ['showconf', 'node', 'c', '--as-peer'], 'mesh'],
    ['showconf peer', ['showconf', 'peer', 'laptop'], 'mesh'],
    ['graph', ['graph'], 'mesh'],
    ['services', ['services', '--node', 'a'], 'services'],
  ];
  for (const [name, args, kind] of views) {
    test(`${name}: the same output and warnings from the API as from the file`, async () => {
      const [live, fromFile] = await Promise.all([
        wirelane(...args, '--kubeconfig', kubeconfig, ...(kind === 'mesh' ? HOURLY : [])),
        wirelane(...args, '--from', kind === 'mesh' ? file : fileWithStale),
      ]);
      assert.equal(live.code, 0, live.stderr);
      assert.equal(fromFile.code, 0, fromFile.stderr);
      assert.notEqual(live.stdout, '');
      assert.equal(live.stdout, fromFile.stdout);
      assert.equal(unlocated(live.stderr).length, 2, live.stderr);
      assert.deepEqual(unlocated(live.stderr), unlocated(fromFile.stderr));
      assert.ok(fromFile.stderr.split('\n').some((l) => /^wirelane: warning: \S+\.yaml: document \d+ \(\w+ "[^"]+"\): /.test(l)), fromFile.stderr);
    });
  }

  test('each malformed value is one warning naming the object and the field; the rest is computed', async () => {
    const mesh = await wirelane('topology', '--node', 'a', '--kubeconfig', kubeconfig, ...HOURLY);
    assert.deepEqual(unlocated(mesh.stderr), [
      'wirelane: warning: Node "b": annotation wirelane.io/persistent-keepalive: "often" is not a keepalive in seconds (0-65535)',
      'wirelane: warning: Peer "broken": spec.publicKey: not a WireGuard key (want base64 of 32 bytes)',
    ]);
    const t = JSON.parse(mesh.stdout) as { segments: { nodes: string[] }[]; peers: { name: string }[] };
    assert.deepEqual(t.segments.map((s) => s.nodes), [['a', 'b'], ['c']], 'b keeps everything but its bad annotation');
    assert.deepEqual(t.peers.map((p) => p.name), ['laptop']);
    const services = await wirelane('services', '--node', 'a', '--kubeconfig', kubeconfig);
    assert.deepEqual(unlocated(services.stderr), [
      'wirelane: warning: EndpointSlice "shop/web-2": endpoints[0].addresses[0]: "10.2.1.300" is not an IP address',
      'wirelane: warning: Service "shop/bad": spec.clusterIP: "10.96.0.300" is not an IP address',
    ]);
    const map = JSON.parse(services.stdout) as { servicePorts: { service: string; internalEndpoints: string[] }[] };
    assert.deepEqual(map.servicePorts.map((p) => [p.service, p.internalEndpoints]), [['shop/api', ['10.2.1.8:8080']], ['shop/web', ['10.2.1.7:8080']]]);
  });

  test('--strict: the same warnings, then exit 1 and no output', async () => {
    for (const args of [['topology', '--node', 'a', ...HOURLY], ['services', '--node', 'a']]) {
      const r = await wirelane(...args, '--kubeconfig', kubeconfig, '--strict');
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stdout, '');
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 3, r.stderr);
      assert.equal(lines.at(-1), 'wirelane: --strict: 2 problems in the input (above)');
    }
  });

  test('a node whose last-seen is older than 2 × the resync period is not ready', async () => {
    const nodesOf = (r: Run): string[] => (JSON.parse(r.stdout) as { segments: { nodes: string[] }[] }).segments.flatMap((s) => s.nodes).sort();
    const hourly = await wirelane('topology', '--node', 'a', '--kubeconfig', kubeconfig, ...HOURLY);
    assert.equal(hourly.code, 0, hourly.stderr);
    assert.deepEqual(nodesOf(hourly), ['a', 'b', 'c']);
    const own = await wirelane('topology', '--node', '0-gone', '--kubeconfig', kubeconfig);
    assert.equal(own.code, 1);
    assert.match(own.stderr, /^wirelane: Node "0-gone": not ready: last seen \d+ s ago, not within 2 × the 30 s resync period$/m, 'the default is the agent\'s 30s');
    // Agents that resync once a day would still count it: the window is theirs.
    const daily = await wirelane('topology', '--node', 'a', '--kubeconfig', kubeconfig, '--resync-period', '24h');
    assert.equal(daily.code, 0, daily.stderr);
    assert.deepEqual(nodesOf(daily), ['0-gone', 'a', 'b', 'c']);
  });

  test('a list that fails is an error naming the resource, never a view of part of the cluster', async (t) => {
    t.after(() => server.clearFaults());
    server.failRequests({ resources: ['peers'], verbs: ['list'] });
    const mesh = await wirelane('graph', '--kubeconfig', kubeconfig);
    assert.equal(mesh.code, 1);
    assert.equal(mesh.stdout, '');
    assert.match(mesh.stderr, /^wirelane: cannot list Peers \(\/apis\/wirelane\.io\/v1alpha1\/peers\): 500 InternalError: injected fault/);
    assert.equal(mesh.stderr.split('\n').length, 2, 'one line');
    server.clearFaults();
    server.setResourceAnswer('endpointslices', 'forbidden');
    const services = await wirelane('services', '--node', 'a', '--kubeconfig', kubeconfig);
    assert.equal(services.code, 1);
    assert.equal(services.stdout, '');
    assert.match(services.stderr, /^wirelane: cannot list EndpointSlices \(\/apis\/discovery\.k8s\.io\/v1\/endpointslices\): 403 Forbidden: /);
  });

  test('a Peer CRD that is not installed means no Peers, as for the agent', async (t) => {
    t.after(() => server.clearFaults());
    server.setResourceAnswer('peers', 'missing');
    const r = await wirelane('topology', '--node', 'a', '--kubeconfig', kubeconfig, ...HOURLY);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { peers: unknown[] }).peers, []);
    assert.match(r.stderr, /Node "b"/);
    assert.doesNotMatch(r.stderr, /Peer/);
  });

  test('an unreachable API server is an error', async () => {
    const nowhere = join(dir, 'nowhere');
    await writeFile(nowhere, kubeconfigYaml('http://127.0.0.1:1'), { mode: 0o600 });
    const r = await wirelane('services', '--node', 'a', '--kubeconfig', nowhere);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^wirelane: cannot list (Nodes|Services|EndpointSlices) \(.*\): .*ECONNREFUSED/);
  });
});
