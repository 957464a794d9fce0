// Integration: the iptables service proxy on real kernels. A sandbox cluster of two nodes (pods on
// each, plain routes between the nodes' pod CIDRs instead of the mesh) and one host outside the
// cluster; every node runs the proxy with the same services, as every node of a cluster would.
// Backends are echo servers that answer with their name and the source address they saw.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import { iptablesBackend } from '../../src/dataplane/iptables/backend.js';
import { deleteConntrack } from '../../src/host/conntrack.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { ConntrackFlushError, IptablesServiceProxy, type IptablesServiceProxyReport, serviceChainName } from '../../src/dataplane/service-iptables/index.js';
import { formatIp, parseCidr, parseIp } from '../../src/model/ip.js';
import { type Protocol, type ServiceBackend, type ServiceMap, type ServicePort, servicePortKey } from '../../src/model/service.js';
import { createSandbox, type Sandbox, type SandboxNode, type SandboxPod } from '../../src/sandbox/index.js';
import { echoRequests, startEchoServer, type EchoRequestOptions } from '../../src/sandbox/echo/index.js';
import { applyMap } from '../support/apply-map.js';
import { IPTABLES_TOOLS, capabilitySkip } from '../support/capability.js';
import { availableIptablesBackends, countedIptables } from '../support/iptables-backends.js';
import { backend as testBackend, serviceMap as testServiceMap, servicePort as testServicePort } from '../support/service-map.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('iptables service proxy tests', [...IPTABLES_TOOLS, ['conntrack', ['--version']]]);

const BACKEND_TCP = 8080;
const BACKEND_UDP = 8053;
const OUTSIDE = '172.31.0.100';
/** Backend name -> the pod it runs in. */
const BACKENDS: Record<string, string> = { a0: 'a-pod0', a1: 'a-pod1', b0: 'b-pod0' };

interface ServiceSpec {
  readonly name: string;
  readonly protocol: Protocol;
  readonly clusterIPs: readonly string[];
  readonly port: number;
  readonly nodePort?: number;
  readonly externalIPs?: readonly string[];
  readonly loadBalancerIPs?: readonly string[];
  readonly sourceRanges?: readonly string[];
  readonly affinitySeconds?: number;
  readonly externalLocal?: boolean;
  /** Backend names (keys of BACKENDS): the endpoints the service map lists. */
  readonly backends: readonly string[];
}

interface Answer {
  readonly backend?: string;
  readonly source?: string;
  readonly error?: string;
}

function parseAnswer(line: string): Answer {
  if (line.startsWith('ERROR ')) return { error: line.slice(6) };
  const [backend, address = ''] = line.split(' ');
  return { backend: backend!, source: address.slice(0, address.lastIndexOf(':')) };
}

describe('iptables service proxy', { skip }, () => {
  let sandbox: Sandbox;
  const proxies = new Map<string, IptablesServiceProxy>();

  const pod = (name: string): SandboxPod => {
    const found = sandbox.pods.find((p) => p.name === name);
    assert.ok(found !== undefined, `pod ${name}`);
    return found;
  };
  const node = (name: string): SandboxNode => sandbox.node(name);

  /** The service map node `self` would compute: endpoints on `self` are local. */
  function mapFor(self: SandboxNode, specs: readonly ServiceSpec[]): ServiceMap {
    const ports = specs.map((spec): ServicePort => {
      const wantsV6 = spec.clusterIPs.some((ip) => ip.includes(':'));
      const endpoints: ServiceBackend[] = spec.backends.flatMap((name) => {
        const p = pod(BACKENDS[name]!);
        const port = spec.protocol === 'UDP' ? BACKEND_UDP : BACKEND_TCP;
        const local = p.node === self.name;
        return [p.ip, ...(wantsV6 && p.ipv6 !== undefined ? [p.ipv6] : [])].map((ip) => ({ ip: parseIp(ip), port, local }));
      });
      const local = endpoints.filter((e) => e.local);
      return {
        service: `default/${spec.name}`,
        portName: spec.protocol.toLowerCase(),
        protocol: spec.protocol,
        clusterIPs: spec.clusterIPs.map(parseIp),
        port: spec.port,
        ...(spec.nodePort === undefined ? {} : { nodePort: spec.nodePort }),
        externalIPs: (spec.externalIPs ?? []).map(parseIp),
        loadBalancerIPs: (spec.loadBalancerIPs ?? []).map(parseIp),
        loadBalancerSourceRanges: (spec.sourceRanges ?? []).map(parseCidr),
        ...(spec.affinitySeconds === undefined ? {} : { sessionAffinityTimeoutSeconds: spec.affinitySeconds }),
        externalPolicyLocal: spec.externalLocal === true,
        internalPolicyLocal: false,
        clusterEndpoints: endpoints,
        internalEndpoints: endpoints,
        externalEndpoints: spec.externalLocal === true ? local : endpoints,
      };
    });
    ports.sort((x, y) => (servicePortKey(x) < servicePortKey(y) ? -1 : 1));
    return {
      node: self.name,
      nodePortAddresses: [self.underlayIP, self.underlayIPv6!].map(parseIp),
      clusterCIDRs: sandbox.nodes.flatMap((n) => n.podCIDRs).map(parseCidr),
      servicePorts: ports,
    };
  }

  async function applyEverywhere(specs: readonly ServiceSpec[]): Promise<Map<string, IptablesServiceProxyReport>> {
    const reports = new Map<string, IptablesServiceProxyReport>();
    for (const n of sandbox.nodes) reports.set(n.name, await applyMap(proxies.get(n.name)!, mapFor(n, specs)));
    return reports;
  }

  async function ask(from: SandboxPod | SandboxNode | string, protocol: 'tcp' | 'udp', host: string, port: number, opts: EchoRequestOptions = {}): Promise<Answer[]> {
    const target = typeof from === 'string' ? from : from.netns;
    return (await echoRequests(sandbox, target, protocol, host, port, { timeoutMs: 1500, ...opts })).map(parseAnswer);
  }

  const outside = (): string => sandbox.outside[0]!.netns;

  async function saved(n: SandboxNode, family: 4 | 6): Promise<string> {
    return (await runCommand(family === 4 ? 'iptables-save' : 'ip6tables-save', [], { netns: n.netns })).stdout;
  }

  before(async () => {
    sandbox = await createSandbox({
      nodes: [
        { name: 'a', underlayAddress: '172.31.0.11/16', underlayAddress6: 'fd31::11/64', podCIDRs: ['10.244.1.0/24', 'fd44:1::/64'], pods: 3 },
        { name: 'b', underlayAddress: '172.31.0.12/16', underlayAddress6: 'fd31::12/64', podCIDRs: ['10.244.2.0/24', 'fd44:2::/64'], pods: 2 },
      ],
      outside: [{ name: 'client', underlayAddress: `${OUTSIDE}/16`, underlayAddress6: 'fd31::100/64' }],
    });
    const [a, b] = [node('a'), node('b')];
    for (const [self, peer] of [[a, b], [b, a]] as const) {
      const routes = [
        // Pod to pod across nodes over the underlay (the mesh's job in a real cluster).
        ['route', 'add', peer.podCIDRs[0]!, 'via', peer.underlayIP],
        ['-6', 'route', 'add', peer.podCIDRs[1]!, 'via', peer.underlayIPv6!],
        // Service addresses need a route for a connect() from the node to get as far as the nat
        // OUTPUT chain (a default route does this on a real node).
        ['route', 'add', '10.96.0.0/16', 'dev', 'eth0'],
        ['route', 'add', '192.0.2.0/24', 'dev', 'eth0'],
        ['-6', 'route', 'add', 'fd96::/112', 'dev', 'eth0'],
      ];
      for (const args of routes) await sandbox.exec(self, 'ip', args);
    }
    // External and load-balancer IPs reach the cluster through node a, as an upstream router would send them.
    await sandbox.exec(outside(), 'ip', ['route', 'add', '192.0.2.0/24', 'via', a.underlayIP]);
    for (const [name, podName] of Object.entries(BACKENDS)) startEchoServer(sandbox, pod(podName), name, { tcp: BACKEND_TCP, udp: BACKEND_UDP });
    await until('echo backends listening', async () => {
      const results = await Promise.all(Object.values(BACKENDS).map((p) => sandbox.probe(node('a'), pod(p).ip, BACKEND_TCP, 1000)));
      return results.every((r) => r === 'open');
    }, 15_000, 200);
    for (const n of sandbox.nodes) proxies.set(n.name, new IptablesServiceProxy({ netns: n.netns }));
  });

  after(async () => {
    for (const proxy of proxies.values()) await proxy.cleanup().catch(() => undefined);
    await sandbox?.destroy();
  });

  test('ClusterIP TCP and UDP from a pod on the same node, a pod on another node, both nodes, and the backend itself', async () => {
    const tcp: ServiceSpec = { name: 'one', protocol: 'TCP', clusterIPs: ['10.96.0.1'], port: 80, backends: ['a0'] };
    await applyEverywhere([tcp, { ...tcp, protocol: 'UDP', port: 53 }]);
    for (const protocol of ['tcp', 'udp'] as const) {
      const port = protocol === 'tcp' ? 80 : 53;
      // Pod sources are kept: in-cluster traffic is not masqueraded.
      assert.deepEqual(await ask(pod('a-pod2'), protocol, '10.96.0.1', port), [{ backend: 'a0', source: pod('a-pod2').ip }], `${protocol} same node`);
      assert.deepEqual(await ask(pod('b-pod1'), protocol, '10.96.0.1', port), [{ backend: 'a0', source: pod('b-pod1').ip }], `${protocol} other node`);
      // The nodes are off-cluster sources: masqueraded to an address of the sending node.
      const [fromA] = await ask(node('a'), protocol, '10.96.0.1', port);
      assert.equal(fromA?.backend, 'a0', `${protocol} from node a: ${JSON.stringify(fromA)}`);
      assert.ok([node('a').underlayIP, ...node('a').podGateways].includes(fromA.source!), `${protocol} from node a seen as ${fromA.source}`);
      assert.deepEqual(await ask(node('b'), protocol, '10.96.0.1', port), [{ backend: 'a0', source: node('b').underlayIP }], `${protocol} from node b`);
      // Hairpin: the backend reaching itself through the service sees the node as the source.
      assert.deepEqual(await ask(pod('a-pod0'), protocol, '10.96.0.1', port), [{ backend: 'a0', source: node('a').podGateways[0] }], `${protocol} hairpin`);
    }
  });

  test('dual-stack ClusterIP: IPv6 to IPv6 endpoints, IPv4 to IPv4 ones', async () => {
    const tcp: ServiceSpec = { name: 'dual', protocol: 'TCP', clusterIPs: ['10.96.0.2', 'fd96::2'], port: 80, backends: ['b0'] };
    const reports = await applyEverywhere([tcp, { ...tcp, protocol: 'UDP', port: 53 }]);
    assert.deepEqual(reports.get('a')!.restores.map((r) => r.family), [4, 6]);
    for (const protocol of ['tcp', 'udp'] as const) {
      const port = protocol === 'tcp' ? 80 : 53;
      assert.deepEqual(await ask(pod('a-pod2'), protocol, 'fd96::2', port), [{ backend: 'b0', source: pod('a-pod2').ipv6 }], `${protocol} IPv6`);
      assert.deepEqual(await ask(pod('a-pod2'), protocol, '10.96.0.2', port), [{ backend: 'b0', source: pod('a-pod2').ip }], `${protocol} IPv4`);
      assert.equal((await ask(node('a'), protocol, 'fd96::2', port))[0]?.backend, 'b0', `${protocol} IPv6 from node a`);
    }
  });

  test('requests spread over every endpoint', async () => {
    const tcp: ServiceSpec = { name: 'spread', protocol: 'TCP', clusterIPs: ['10.96.0.3'], port: 80, backends: ['a0', 'a1', 'b0'] };
    await applyEverywhere([tcp, { ...tcp, protocol: 'UDP', port: 53 }]);
    const count = (answers: Answer[]) => {
      const seen = new Map<string, number>();
      for (const a of answers) seen.set(a.backend ?? `ERROR ${a.error}`, (seen.get(a.backend ?? `ERROR ${a.error}`) ?? 0) + 1);
      return seen;
    };
    // 60 requests miss one of 3 equally likely backends with probability 3 * (2/3)^60 ≈ 1e-10.
    const tcpSeen = count(await ask(pod('a-pod2'), 'tcp', '10.96.0.3', 80, { count: 60 }));
    assert.deepEqual([...tcpSeen.keys()].sort(), ['a0', 'a1', 'b0'], JSON.stringify([...tcpSeen]));
    const udpSeen = count(await ask(pod('b-pod1'), 'udp', '10.96.0.3', 53, { count: 60 }));
    assert.deepEqual([...udpSeen.keys()].sort(), ['a0', 'a1', 'b0'], JSON.stringify([...udpSeen]));
  });

  test('NodePort under Cluster policy: reachable from outside on every node, masqueraded', async () => {
    const tcp: ServiceSpec = { name: 'np', protocol: 'TCP', clusterIPs: ['10.96.0.4'], port: 80, nodePort: 30080, backends: ['a0', 'b0'] };
    await applyEverywhere([tcp, { ...tcp, protocol: 'UDP', port: 53, nodePort: 30053 }]);
    for (const n of [node('a'), node('b')]) {
      for (const [protocol, port] of [['tcp', 30080], ['udp', 30053]] as const) {
        const answers = await ask(outside(), protocol, n.underlayIP, port, { count: 20 });
        const backends = new Set(answers.map((a) => a.backend));
        assert.deepEqual([...backends].sort(), ['a0', 'b0'], `${protocol} via ${n.name}: ${JSON.stringify(answers.slice(0, 3))}`);
        // The backend never sees the client: the reply must come back through the node that DNATed it.
        assert.ok(answers.every((a) => a.source !== OUTSIDE && [n.underlayIP, ...n.podGateways].includes(a.source!)), JSON.stringify(answers));
      }
    }
  });

  test('Local policy keeps the client address, drops on a node without a local endpoint, and short-circuits pods and nodes', async () => {
    const tcp: ServiceSpec = { name: 'local', protocol: 'TCP', clusterIPs: ['10.96.0.5'], port: 80, nodePort: 30081, externalIPs: ['192.0.2.11'], externalLocal: true, backends: ['a0'] };
    await applyEverywhere([tcp]);
    assert.deepEqual(await ask(outside(), 'tcp', node('a').underlayIP, 30081), [{ backend: 'a0', source: OUTSIDE }]);
    assert.deepEqual(await ask(outside(), 'tcp', '192.0.2.11', 80), [{ backend: 'a0', source: OUTSIDE }]);
    // Node b has no local endpoint: dropped, not refused (a load balancer's health check moves on).
    assert.deepEqual(await ask(outside(), 'tcp', node('b').underlayIP, 30081, { timeoutMs: 1000 }), [{ error: 'ETIMEDOUT' }]);
    // Pods and the node itself reaching an external address still get an endpoint anywhere.
    assert.deepEqual(await ask(pod('b-pod1'), 'tcp', '192.0.2.11', 80), [{ backend: 'a0', source: pod('b-pod1').ip }]);
    assert.equal((await ask(node('b'), 'tcp', node('b').underlayIP, 30081))[0]?.backend, 'a0');
  });

  test('ExternalIP: reachable from outside through the node it is routed to, masqueraded under Cluster', async () => {
    await applyEverywhere([{ name: 'ext', protocol: 'TCP', clusterIPs: ['10.96.0.6'], port: 80, externalIPs: ['192.0.2.10'], backends: ['b0'] }]);
    assert.deepEqual(await ask(outside(), 'tcp', '192.0.2.10', 80, { count: 3 }), Array(3).fill({ backend: 'b0', source: node('a').underlayIP }));
  });

  test('load-balancer IPs: listed source ranges get through, other sources are dropped', async () => {
    await applyEverywhere([
      { name: 'lb-open', protocol: 'TCP', clusterIPs: ['10.96.0.7'], port: 80, loadBalancerIPs: ['192.0.2.20'], sourceRanges: [`${OUTSIDE}/32`], backends: ['a0'] },
      { name: 'lb-shut', protocol: 'TCP', clusterIPs: ['10.96.0.8'], port: 80, loadBalancerIPs: ['192.0.2.21'], sourceRanges: ['198.51.100.0/24'], backends: ['a0'] },
    ]);
    assert.deepEqual(await ask(outside(), 'tcp', '192.0.2.20', 80), [{ backend: 'a0', source: node('a').podGateways[0] }]);
    assert.deepEqual(await ask(outside(), 'tcp', '192.0.2.21', 80, { timeoutMs: 1000 }), [{ error: 'ETIMEDOUT' }]);
    // The ranges guard the load-balancer IP only.
    assert.equal((await ask(pod('b-pod1'), 'tcp', '10.96.0.8', 80))[0]?.backend, 'a0');
  });

  test('ClientIP affinity sticks to one endpoint, then expires', async () => {
    await applyEverywhere([
      { name: 'sticky', protocol: 'TCP', clusterIPs: ['10.96.0.9'], port: 80, affinitySeconds: 1, backends: ['a0', 'a1', 'b0'] },
      { name: 'sticky-remote', protocol: 'UDP', clusterIPs: ['10.96.0.9'], port: 53, affinitySeconds: 1, backends: ['a0', 'a1'] },
    ]);
    const burst = await ask(pod('a-pod2'), 'tcp', '10.96.0.9', 80, { count: 10, intervalMs: 50 });
    assert.equal(new Set(burst.map((a) => a.backend)).size, 1, JSON.stringify(burst));
    assert.ok(burst[0]?.backend !== undefined);
    // From node b both endpoints are remote, chosen by inline DNAT rules rather than endpoint chains.
    const remote = await ask(pod('b-pod1'), 'udp', '10.96.0.9', 53, { count: 10, intervalMs: 50 });
    assert.equal(new Set(remote.map((a) => a.backend)).size, 1, JSON.stringify(remote));
    assert.ok(remote[0]?.backend !== undefined);
    // Each request after the 1 s timeout chooses afresh: 8 of them land on one backend with
    // probability (1/3)^7 ≈ 5e-4.
    const later = new Set<string | undefined>();
    for (let i = 0; i < 8 && later.size < 2; i++) {
      await sleep(1300);
      later.add((await ask(pod('a-pod2'), 'tcp', '10.96.0.9', 80))[0]?.backend);
    }
    assert.ok(later.size >= 2, `after expiry every request still went to ${[...later]}`);
  });

  test('no endpoints: TCP and UDP clients are refused at once, from pods, nodes and outside', async () => {
    const tcp: ServiceSpec = { name: 'empty', protocol: 'TCP', clusterIPs: ['10.96.0.10', 'fd96::10'], port: 80, nodePort: 30082, backends: [] };
    await applyEverywhere([tcp, { ...tcp, protocol: 'UDP', port: 53, nodePort: 30054 }]);
    const refused = [{ error: 'ECONNREFUSED' }];
    for (const from of [pod('a-pod2'), pod('b-pod1'), node('a')]) {
      for (const [protocol, port] of [['tcp', 80], ['udp', 53]] as const) {
        for (const ip of ['10.96.0.10', 'fd96::10']) {
          // A refusal, not a timeout: the client reports which one ended the request.
          assert.deepEqual(await ask(from, protocol, ip, port, { timeoutMs: 5000 }), refused, `${protocol} ${ip} from ${from.name}`);
        }
      }
    }
    assert.deepEqual(await ask(outside(), 'tcp', node('a').underlayIP, 30082, { timeoutMs: 5000 }), refused);
    assert.deepEqual(await ask(outside(), 'udp', node('b').underlayIP, 30054, { timeoutMs: 5000 }), refused);
  });

  test('endpoints are exactly what the map lists: with only b0 listed (say, the terminating fallback) every request reaches it', async () => {
    await applyEverywhere([{ name: 'only', protocol: 'TCP', clusterIPs: ['10.96.0.11'], port: 80, backends: ['b0'] }]);
    const answers = await ask(pod('a-pod2'), 'tcp', '10.96.0.11', 80, { count: 20 });
    assert.deepEqual(new Set(answers.map((a) => a.backend)), new Set(['b0']));
  });

  test('a removed endpoint gets no new connections, and a UDP flow on it moves once conntrack is flushed', async () => {
    const tcp: ServiceSpec = { name: 'moving', protocol: 'TCP', clusterIPs: ['10.96.0.12'], port: 80, backends: ['a0', 'a1', 'b0'] };
    const udp: ServiceSpec = { ...tcp, protocol: 'UDP', port: 53, backends: ['b0'] };
    await applyEverywhere([tcp, udp]);
    // One UDP socket, one flow, a request every 100 ms for 4 s; b0 leaves the service after 1.5 s.
    const flow = ask(pod('a-pod2'), 'udp', '10.96.0.12', 53, { count: 40, intervalMs: 100, sameSocket: true });
    await sleep(1500);
    const reports = await applyEverywhere([{ ...tcp, backends: ['a0', 'a1'] }, { ...udp, backends: ['a0', 'a1'] }]);
    const answers = (await flow).map((a) => a.backend ?? `ERROR ${a.error}`);
    assert.equal(answers[0], 'b0', answers.join(' '));
    const moved = answers.findIndex((b) => b !== 'b0');
    assert.ok(moved > 0, `the flow never left b0: ${answers.join(' ')}`);
    assert.ok(answers.slice(moved).every((b) => b === 'a0' || b === 'a1'), answers.join(' '));
    assert.ok(reports.get('a')!.conntrackDeletions > 0);
    const fresh = await ask(pod('b-pod1'), 'tcp', '10.96.0.12', 80, { count: 30 });
    assert.ok(fresh.every((a) => a.backend === 'a0' || a.backend === 'a1'), JSON.stringify(fresh));
  });

  test('deleting a service removes its chains and rules', async () => {
    const gone: ServiceSpec = { name: 'gone', protocol: 'UDP', clusterIPs: ['10.96.0.13'], port: 53, nodePort: 30055, backends: ['a0', 'b0'] };
    const stays: ServiceSpec = { name: 'stays', protocol: 'TCP', clusterIPs: ['10.96.0.14'], port: 80, backends: ['a0'] };
    await applyEverywhere([gone, stays]);
    const key = servicePortKey({ service: 'default/gone', portName: 'udp', protocol: 'UDP' });
    const svc = serviceChainName('SVC', key);
    assert.match(await saved(node('a'), 4), new RegExp(svc));
    const reports = await applyEverywhere([stays]);
    const deleted = reports.get('a')!.restores[0]!.deletedChains.map((c) => c.chain);
    assert.ok(deleted.includes(svc) && deleted.includes(serviceChainName('EXT', key)), deleted.join(' '));
    for (const n of sandbox.nodes) {
      const text = await saved(n, 4);
      assert.ok(!text.includes(svc) && !text.includes('10.96.0.13') && !text.includes('30055'), text);
    }
    assert.equal((await ask(pod('a-pod2'), 'tcp', '10.96.0.14', 80))[0]?.backend, 'a0');
  });

  test('the same map again writes nothing; one endpoint changed rewrites only that service port`s chains', async () => {
    const specs: ServiceSpec[] = ['p', 'q', 'r'].map((name, i) => ({ name, protocol: 'TCP', clusterIPs: [`10.96.1.${i + 1}`], port: 80, nodePort: 30100 + i, backends: ['a0', 'a1', 'b0'] }));
    await applyEverywhere(specs);
    for (const report of (await applyEverywhere(specs)).values()) assert.equal(report.written, 0);
    const changed = specs.map((s) => (s.name === 'r' ? { ...s, backends: ['a0', 'b0'] } : s));
    const report = (await applyEverywhere(changed)).get('a')!;
    assert.equal(report.written, 1);
    const [restore] = report.restores;
    const key = servicePortKey({ service: 'default/r', portName: 'tcp', protocol: 'TCP' });
    const a1 = pod('a-pod1');
    assert.deepEqual(restore!.writtenChains.map((c) => c.chain), [serviceChainName('SVC', key)]);
    assert.deepEqual(restore!.deletedChains.map((c) => c.chain), [serviceChainName('SEP', `${key}|${a1.ip}:${BACKEND_TCP}`)]);
    assert.deepEqual(restore!.rewrittenJumps, []);
    // The restore input names nothing else: no shared chain, no other service.
    const declared = restore!.input.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]).sort();
    assert.deepEqual(declared, [serviceChainName('SVC', key), serviceChainName('SEP', `${key}|${a1.ip}:${BACKEND_TCP}`)].sort());
    assert.ok(!restore!.input.includes('WLSVC-SERVICES'), restore!.input);
    const answers = await ask(pod('b-pod1'), 'tcp', '10.96.1.3', 80, { count: 20 });
    assert.ok(answers.every((a) => a.backend === 'a0' || a.backend === 'b0'), JSON.stringify(answers));
  });

  test('cleanup leaves no WLSVC chain or wirelane-svc jump in either family, also after a crashed run', async () => {
    const tcp: ServiceSpec = { name: 'last', protocol: 'TCP', clusterIPs: ['10.96.0.15', 'fd96::15'], port: 80, nodePort: 30090, externalIPs: ['192.0.2.15'], affinitySeconds: 5, backends: ['a0', 'b0'] };
    await applyEverywhere([tcp, { ...tcp, protocol: 'UDP', port: 53, nodePort: 30091, backends: [] }]);
    for (const n of sandbox.nodes) assert.match(await saved(n, 6), /WLSVC-SVC-/);
    await proxies.get('a')!.cleanup();
    // Node b's proxy "crashed": a new one, knowing nothing, removes what the old one wrote.
    await new IptablesServiceProxy({ netns: node('b').netns }).cleanup();
    for (const n of sandbox.nodes) {
      for (const family of [4, 6] as const) {
        const text = await saved(n, family);
        assert.ok(!text.includes('WLSVC') && !text.includes('wirelane-svc'), `node ${n.name} IPv${family}:\n${text}`);
      }
    }
  });
});

describe('iptables service proxy: a UDP conntrack deletion that fails', { skip }, () => {
  test('is retried at the next apply, since the change stays pending until an apply succeeds', async (t) => {
    const netns = `wl-ipt-ct-${process.pid}`;
    let proxy: IptablesServiceProxy | undefined;
    await createNetns([netns]);
    t.after(async () => {
      await proxy?.cleanup();
      await deleteNetns([netns]);
    });
    const tried: string[] = [];
    let failures = 1;
    // The real deletion, after one failure (a conntrack process that could not run).
    const deleteEntries: typeof deleteConntrack = async (filter, opts) => {
      tried.push(`${formatIp(filter.origDst!)}:${filter.origDstPort} <- ${filter.replySrc === undefined ? '*' : formatIp(filter.replySrc)}`);
      if (failures-- > 0) throw new Error('conntrack: cannot run');
      return deleteConntrack(filter, opts);
    };
    proxy = new IptablesServiceProxy({ netns, deleteConntrack: deleteEntries });
    const dns = (...endpoints: string[]): ServiceMap => {
      const backends = endpoints.map((e) => testBackend(e));
      return testServiceMap([testServicePort({ service: 'kube-system/dns', portName: 'dns', protocol: 'UDP', port: 53, clusterEndpoints: backends, internalEndpoints: backends, externalEndpoints: backends })]);
    };
    await applyMap(proxy, dns('10.244.1.2:53', '10.244.2.2:53'));
    await assert.rejects(applyMap(proxy, dns('10.244.1.2:53')), ConntrackFlushError);
    assert.equal((await applyMap(proxy, dns('10.244.1.2:53'))).conntrackDeletions, 1);
    assert.equal((await applyMap(proxy, dns('10.244.1.2:53'))).conntrackDeletions, 0);
    assert.deepEqual(tried, ['10.96.0.10:53 <- 10.244.2.2', '10.96.0.10:53 <- 10.244.2.2']);
  });
});

// Partial syncs trust the proxy's record; full syncs (the first, hourly, after a failed restore)
// read and repair. Checked per backend on chains and iptables-save runs; traffic above.
const backends = skip ? [] : await availableIptablesBackends();
for (const kind of backends) {
  describe(`iptables service proxy: partial and full syncs (${kind})`, { skip }, () => {
    const web = (...endpoints: string[]): ServicePort => {
      const backends = endpoints.map((e, i) => testBackend(e, i === 0));
      return testServicePort({ clusterEndpoints: backends, internalEndpoints: backends, externalEndpoints: backends });
    };
    const other = testServicePort({ service: 'default/other', clusterIPs: [parseIp('10.96.0.20')] });
    const map = (...endpoints: string[]): ServiceMap => testServiceMap([web(...endpoints), other]);
    const KEY = servicePortKey(web());
    const SVC = serviceChainName('SVC', KEY);
    const SEP = serviceChainName('SEP', `${KEY}|10.244.1.2:8080`);

    /** A proxy in a namespace of its own, on a clock the test moves, counting iptables-save and -restore runs. */
    async function withProxy(tag: string, body: (p: { proxy: IptablesServiceProxy; netns: string; counting: (m: ServiceMap) => Promise<{ report: IptablesServiceProxyReport; saves: number; restores: number }>; periodPasses: () => void }) => Promise<void>): Promise<void> {
      const netns = `wl-ipt-svc-${process.pid.toString(36)}-${kind}-${tag}`;
      const host = countedIptables();
      await createNetns([netns]);
      const proxy = new IptablesServiceProxy({ netns, backend: iptablesBackend(kind), run: host.run, now: host.now });
      try {
        const counting = async (m: ServiceMap) => {
          const { value: report, saves, restores } = await host.counting(() => applyMap(proxy, m));
          return { report, saves, restores };
        };
        await body({ proxy, netns, counting, periodPasses: host.periodPasses });
      } finally {
        await proxy.cleanup().catch(() => undefined);
        await deleteNetns([netns]);
      }
    }
    const byHand = (netns: string, args: string[]) => runCommand(`iptables-${kind}`, ['-t', 'nat', ...args], { netns });
    const natLines = async (netns: string, chain: string) =>
      (await runCommand(iptablesBackend(kind).save[4], ['-t', 'nat'], { netns })).stdout.split('\n').filter((l) => l.startsWith(`-A ${chain} `));

    test('after the first sync no iptables-save runs: an idle re-apply writes nothing, a one-endpoint change only its chains', async () => {
      await withProxy('partial', async ({ counting }) => {
        const first = await counting(map('10.244.1.2:8080', '10.244.2.2:8080'));
        assert.equal(first.report.sync, 'full');
        const idle = await counting(map('10.244.1.2:8080', '10.244.2.2:8080'));
        assert.deepEqual([idle.report.sync, idle.saves, idle.restores], ['partial', 0, 0]);
        const change = await counting(map('10.244.1.2:8080', '10.244.2.3:8080'));
        assert.deepEqual([change.report.sync, change.saves, change.restores], ['partial', 0, 1]);
        assert.deepEqual(change.report.restores.flatMap((r) => r.writtenChains.map((c) => c.chain)), [SVC]);
      });
    });

    test('the services chain deleted with the jumps to it from PREROUTING and OUTPUT: partial syncs trust the record, the next full sync restores all', async () => {
      await withProxy('deleted', async ({ netns, counting, periodPasses }) => {
        await counting(map('10.244.1.2:8080', '10.244.2.2:8080'));
        for (const from of ['PREROUTING', 'OUTPUT']) await byHand(netns, ['-D', from, '-m', 'comment', '--comment', 'wirelane-svc: service portals', '-j', 'WLSVC-SERVICES']);
        await byHand(netns, ['-F', 'WLSVC-SERVICES']);
        await byHand(netns, ['-X', 'WLSVC-SERVICES']);
        const partial = await counting(map('10.244.1.2:8080', '10.244.2.2:8080'));
        assert.deepEqual([partial.report.sync, partial.saves, partial.restores], ['partial', 0, 0]);
        periodPasses();
        const full = await counting(map('10.244.1.2:8080', '10.244.2.2:8080'));
        assert.equal(full.report.sync, 'full');
        const restore = full.report.restores.find((r) => r.family === 4)!;
        assert.deepEqual(restore.writtenChains.map((c) => c.chain), ['WLSVC-SERVICES']);
        assert.deepEqual(restore.rewrittenJumps.map((c) => c.chain).sort(), ['OUTPUT', 'PREROUTING']);
        assert.equal((await natLines(netns, 'WLSVC-SERVICES')).length, 3, 'two services and the node-port address');
        for (const from of ['PREROUTING', 'OUTPUT']) assert.deepEqual(await natLines(netns, from), [`-A ${from} -m comment --comment "wirelane-svc: service portals" -j WLSVC-SERVICES`]);
      });
    });

    test('a partial restore that fails on an endpoint chain deleted by hand is followed at once by a full sync that repairs it', async () => {
      await withProxy('failed', async ({ netns, counting }) => {
        await counting(map('10.244.1.2:8080', '10.244.2.2:8080'));
        // The local endpoint's chain goes, with the rule that jumps to it.
        await byHand(netns, ['-F', SVC]);
        await byHand(netns, ['-F', SEP]);
        await byHand(netns, ['-X', SEP]);
        // Only the SVC chain is rewritten, and it jumps to the missing SEP chain: the restore fails.
        const change = await counting(map('10.244.1.2:8080', '10.244.2.3:8080'));
        assert.equal(change.report.sync, 'partial');
        assert.deepEqual(change.report.recovered.map((r) => r.family), [4]);
        assert.match(change.report.warnings?.join('\n') ?? '', /^service proxy \(iptables\): IPv4 partial restore failed, repaired by a full sync: /);
        assert.deepEqual([change.saves, change.restores], [2, 2]);
        assert.deepEqual(change.report.restores[0]!.writtenChains.map((c) => c.chain).sort(), [SEP, SVC].sort());
        assert.equal((await natLines(netns, SEP)).length, 2);
        assert.match((await natLines(netns, SVC)).join('\n'), /10\.244\.2\.3:8080/);
        const idle = await counting(map('10.244.1.2:8080', '10.244.2.3:8080'));
        assert.deepEqual([idle.report.sync, idle.saves, idle.restores], ['partial', 0, 0]);
      });
    });
  });
}
