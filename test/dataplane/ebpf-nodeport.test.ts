// Integration: the tc NodePort data path (bpf/nodeport.bpf.c via NodePortDatapath) on the real
// kernel. Two nodes with pods and a client outside the cluster, as network namespaces; the
// programs attach to each node's underlay interface inside its namespace, each node with its own
// pin directory (its own maps, as separate machines would have). The service entries are written
// here with the shared codec, the way the eBPF service proxy writes them for the external scope.
// Client and pods fill in their checksums in software (iptables CHECKSUM), so every receiver
// verifies the checksums the programs updated, and nstat counts any it finds wrong.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BpfError, bpfFixturePath, openPinnedLink, openPinnedMap, type BpfMap } from '../../src/bpf/index.js';
import { runCommand } from '../../src/host/command.js';
import {
  MAP_NAMES,
  Scope,
  ServiceFlag,
  BackendFlag,
  PROTOCOL_NUMBERS,
  writeBackendKey,
  writeBackendValue,
  writeNodeAddrKey,
  writeServiceKey,
  writeServiceValue,
} from '../../src/dataplane/ebpf/codec.js';
import { NODEPORT_MAPS, NodePortDatapath } from '../../src/dataplane/ebpf/nodeport.js';
import { parseCidr, parseIp, type Ip } from '../../src/model/ip.js';
import { noEndpointAction, type ServiceBackend, type ServiceMap, type ServicePort } from '../../src/model/service.js';
import { echoRequests, startEchoServer, type EchoRequestOptions } from '../../src/sandbox/echo/index.js';
import { createSandbox, type NetnsTarget, type Sandbox, type SandboxNode } from '../../src/sandbox/index.js';
import { IPTABLES_TOOLS, capabilitySkip } from '../support/capability.js';
import { heldIds, ownedIds, pinnedIds } from '../support/own-bpf.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('tc NodePort integration tests', [
  ...IPTABLES_TOOLS,
  ['bpftool', ['version']],
  ['clang', ['--version']],
  ['tc', ['-V']],
  ['nstat', ['-V']],
  ['nsenter', ['--version']],
  ['ping', ['-V']],
]);

const ECHO_PORT = 8080;
const EXTERNAL_IP = '192.0.2.10';
const LOAD_BALANCER_IP = '192.0.2.20';
const SNAT_PORTS = { min: 61000, max: 65535 };

interface ServiceSpec {
  readonly name: string;
  readonly nodePort?: number;
  readonly port?: number;
  readonly externalIPs?: readonly string[];
  readonly loadBalancerIPs?: readonly string[];
  readonly loadBalancerSourceRanges?: readonly string[];
  /** Pod names; their IPv4 and IPv6 addresses both serve. */
  readonly endpoints: readonly string[];
  readonly externalPolicyLocal?: boolean;
  readonly affinitySeconds?: number;
}

const LOCAL_ON_A: ServiceSpec = { name: 'on-a', nodePort: 30001, endpoints: ['a-pod0'] };
const EXTERNAL: ServiceSpec = { name: 'external', port: 80, externalIPs: [EXTERNAL_IP], endpoints: ['b-pod0'] };
const BALANCED: ServiceSpec = { name: 'balanced', port: 80, loadBalancerIPs: [LOAD_BALANCER_IP], loadBalancerSourceRanges: ['172.31.1.0/24'], endpoints: ['a-pod1'] };
const POLICY_LOCAL: ServiceSpec = { name: 'policy-local', nodePort: 30002, endpoints: ['a-pod1'], externalPolicyLocal: true };
const EMPTY: ServiceSpec = { name: 'empty', nodePort: 30003, endpoints: [] };
const STICKY: ServiceSpec = { name: 'sticky', nodePort: 30004, endpoints: ['a-pod0', 'a-pod1', 'b-pod0'], affinitySeconds: 30 };
const SPREAD: ServiceSpec = { name: 'spread', nodePort: 30005, endpoints: ['a-pod0', 'a-pod1', 'b-pod0'] };
const SERVICES = [LOCAL_ON_A, EXTERNAL, BALANCED, POLICY_LOCAL, EMPTY, STICKY, SPREAD];
const BACKENDS = ['a0', 'a1', 'b0'];

describe('tc NodePort data path in a sandbox', { skip }, () => {
  let sandbox: Sandbox | undefined;
  let bpffs: string | undefined;
  let mounted = false;
  const datapaths = new Map<string, NodePortDatapath>();
  const backendIds = new Map<string, number>();

  const sb = (): Sandbox => sandbox as Sandbox;
  const node = (name: string): SandboxNode => sb().node(name);
  const client = () => sb().outside[0] as NonNullable<Sandbox['outside'][0]>;
  const pod = (name: string) => {
    const found = sb().pods.find((p) => p.name === name);
    assert.ok(found, `pod ${name}`);
    return found;
  };
  const pinDir = (name: string): string => join(bpffs as string, name);
  const datapath = (name: string): NodePortDatapath => datapaths.get(name) as NodePortDatapath;
  const ask = (from: NetnsTarget, protocol: 'tcp' | 'udp', host: string, port: number, opts: EchoRequestOptions = {}) => echoRequests(sb(), from, protocol, host, port, opts);
  const backendOf = (line: string): string => line.split(' ')[0] as string;
  /** The address and port the backend saw: `a0 172.31.1.1:40312` → ['172.31.1.1', 40312]. */
  const seen = (line: string): [string, number] => {
    const text = line.split(' ')[1] ?? '';
    const colon = text.lastIndexOf(':');
    return [text.slice(0, colon), Number(text.slice(colon + 1))];
  };

  /** The service map of `self` for `specs`, as services/ would compute it. */
  function mapFor(self: SandboxNode, specs: readonly ServiceSpec[]): ServiceMap {
    const servicePorts: ServicePort[] = [];
    for (const spec of specs) {
      const endpoints = spec.endpoints.flatMap((name): ServiceBackend[] => {
        const p = pod(name);
        const local = p.node === self.name;
        return [p.ip, ...(p.ipv6 === undefined ? [] : [p.ipv6])].map((ip) => ({ ip: parseIp(ip), port: ECHO_PORT, local }));
      });
      for (const protocol of ['TCP', 'UDP'] as const) {
        servicePorts.push({
          service: `default/${spec.name}`,
          portName: protocol.toLowerCase(),
          protocol,
          clusterIPs: [],
          port: spec.port ?? 80,
          ...(spec.nodePort === undefined ? {} : { nodePort: spec.nodePort }),
          externalIPs: (spec.externalIPs ?? []).map(parseIp),
          loadBalancerIPs: (spec.loadBalancerIPs ?? []).map(parseIp),
          loadBalancerSourceRanges: (spec.loadBalancerSourceRanges ?? []).map(parseCidr),
          ...(spec.affinitySeconds === undefined ? {} : { sessionAffinityTimeoutSeconds: spec.affinitySeconds }),
          externalPolicyLocal: spec.externalPolicyLocal === true,
          internalPolicyLocal: false,
          clusterEndpoints: endpoints,
          internalEndpoints: endpoints,
          externalEndpoints: spec.externalPolicyLocal === true ? endpoints.filter((e) => e.local) : endpoints,
        });
      }
    }
    return {
      node: self.name,
      nodePortAddresses: [self.underlayIP, self.underlayIPv6].filter((a) => a !== undefined).map(parseIp),
      clusterCIDRs: [parseCidr('10.244.0.0/16'), parseCidr('fd44::/16')],
      servicePorts,
    };
  }

  function backendId(ip: Ip, port: number): number {
    const id = `${ip.family}/${ip.value}/${port}`;
    let n = backendIds.get(id);
    if (n === undefined) {
      n = backendIds.size + 1;
      backendIds.set(id, n);
    }
    return n;
  }

  /**
   * Writes the external-scope entries of `map` into a node's shared maps, as the eBPF service
   * proxy does (frontends.ts): ExternalIPs, LB IPs and the NodePort wildcard, per family.
   */
  function writeServices(dir: string, map: ServiceMap): void {
    const open = (name: string): BpfMap => openPinnedMap(join(dir, name));
    const services = open(MAP_NAMES.services);
    const slots = open(MAP_NAMES.slots);
    const backends = open(MAP_NAMES.backends);
    const nodeAddrs = open(MAP_NAMES.nodeAddrs);
    try {
      for (const ip of map.nodePortAddresses) {
        const key = Buffer.alloc(20);
        writeNodeAddrKey(key, 0, ip);
        nodeAddrs.update(key, Buffer.alloc(4));
      }
      let serviceId = 0;
      let nextSlot = 0;
      for (const p of map.servicePorts) {
        serviceId++;
        for (const family of [4, 6] as const) {
          const chosen = p.externalEndpoints.filter((e) => e.ip.family === family);
          for (const e of chosen) {
            const key = Buffer.alloc(4);
            const value = Buffer.alloc(20);
            writeBackendKey(key, 0, backendId(e.ip, e.port));
            writeBackendValue(value, 0, { addr: e.ip, port: e.port, flags: e.local ? BackendFlag.local : 0 });
            backends.update(key, value);
          }
          let flags = p.sessionAffinityTimeoutSeconds === undefined ? 0 : ServiceFlag.affinity;
          if (noEndpointAction(p, chosen, family) === 'drop') flags |= ServiceFlag.noEndpointDrop;
          if (p.externalPolicyLocal) flags |= ServiceFlag.localOnly;
          const frontends: Array<[Ip | undefined, number, number]> = [
            ...p.externalIPs.map((ip): [Ip, number, number] => [ip, p.port, ServiceFlag.externalIP]),
            ...p.loadBalancerIPs.map((ip): [Ip, number, number] => [ip, p.port, ServiceFlag.loadBalancer | (p.loadBalancerSourceRanges.length > 0 ? ServiceFlag.sourceRanges : 0)]),
            ...(p.nodePort === undefined ? [] : [[undefined, p.nodePort, ServiceFlag.nodePort] as [undefined, number, number]]),
          ];
          for (const [addr, port, kind] of frontends) {
            if (addr !== undefined && addr.family !== family) continue;
            const firstSlot = nextSlot;
            chosen.forEach((e, i) => {
              const index = Buffer.alloc(4);
              index.writeUInt32LE(firstSlot + i);
              const id = Buffer.alloc(4);
              id.writeUInt32LE(backendId(e.ip, e.port));
              slots.update(index, id);
            });
            nextSlot += chosen.length;
            const key = Buffer.alloc(24);
            const value = Buffer.alloc(20);
            writeServiceKey(key, 0, { addr, port, protocol: p.protocol, family, scope: Scope.external });
            writeServiceValue(value, 0, { firstSlot, serviceId, count: chosen.length, flags: flags | kind, affinityTimeout: p.sessionAffinityTimeoutSeconds ?? 0, capacity: chosen.length });
            services.update(key, value);
          }
        }
      }
    } finally {
      for (const m of [services, slots, backends, nodeAddrs]) m.close();
    }
  }

  /**
   * Ids of this test's links: pinned in its own bpffs, to programs using the maps pinned there (on
   * any interface), or held open by this process. Other programs named np_ may be attached on the
   * machine meanwhile (other tests, benchmarks): those never count.
   */
  async function linkIds(): Promise<number[]> {
    const pinned = pinnedIds(bpffs as string);
    const owned = await ownedIds({ maps: pinned.maps, progs: pinned.progs });
    return [...new Set([...pinned.links, ...owned.links, ...heldIds().links])].sort((a, b) => a - b);
  }

  /** The program a pinned link runs. */
  function programOf(pin: string): number {
    const link = openPinnedLink(pin);
    try {
      return link.info().progId;
    } finally {
      link.close();
    }
  }

  /** Per-namespace TCP and UDP counters (nstat -a: since boot of the namespace, not since the last call). */
  async function counters(target: NetnsTarget): Promise<Record<string, number>> {
    const out = (await sb().exec(target, 'nstat', ['-az', '-j'])).stdout;
    const parsed = JSON.parse(out) as { kernel: Record<string, number> };
    return parsed.kernel;
  }

  before(async () => {
    bpffs = mkdtempSync(join(tmpdir(), 'wl-nodeport-bpffs-'));
    await runCommand('mount', ['-t', 'bpf', 'bpf', bpffs]);
    mounted = true;
    sandbox = await createSandbox({
      nodes: [
        { name: 'a', underlayAddress: '172.31.0.11/16', underlayAddress6: 'fd31::11/64', podCIDRs: ['10.244.1.0/24', 'fd44:1::/64'], pods: 2 },
        { name: 'b', underlayAddress: '172.31.0.12/16', underlayAddress6: 'fd31::12/64', podCIDRs: ['10.244.2.0/24', 'fd44:2::/64'], pods: 1 },
      ],
      outside: [{ name: 'client', underlayAddress: '172.31.1.1/16', underlayAddress6: 'fd31::1:1/64' }],
    });
    // Pod networks over the underlay, as plain routes (no mesh here).
    await sb().exec(node('a'), 'ip', ['route', 'add', '10.244.2.0/24', 'via', node('b').underlayIP]);
    await sb().exec(node('a'), 'ip', ['-6', 'route', 'add', 'fd44:2::/64', 'via', 'fd31::12']);
    await sb().exec(node('b'), 'ip', ['route', 'add', '10.244.1.0/24', 'via', node('a').underlayIP]);
    await sb().exec(node('b'), 'ip', ['-6', 'route', 'add', 'fd44:1::/64', 'via', 'fd31::11']);
    // Neighbours resolved up front: in a fresh sandbox a host's first packet to another is now and
    // then lost (a first connect takes a 1 s SYN retransmission, measured with no program
    // attached), which a 1 s request timeout would report as a failure of the data path.
    const pairs: Array<[NetnsTarget, string | undefined]> = [
      [client(), node('a').underlayIP], [client(), node('b').underlayIP], [client(), node('a').underlayIPv6], [client(), node('b').underlayIPv6],
      [node('a'), node('b').underlayIP], [node('b'), node('a').underlayIP], [node('a'), node('b').underlayIPv6], [node('b'), node('a').underlayIPv6],
    ];
    for (const [from, to] of pairs) if (to !== undefined) await sb().exec(from, 'ping', ['-c', '1', '-W', '3', to]);
    // The client reaches external and load-balancer IPs through node a, as a router would send them.
    await sb().exec(client(), 'ip', ['route', 'add', '192.0.2.0/24', 'via', node('a').underlayIP]);
    // Full checksums on the wire: a wrong incremental update is then a dropped packet and a
    // counted checksum error, not something a CHECKSUM_PARTIAL veth hands on unverified.
    for (const target of [client(), ...sb().pods]) {
      for (const iptables of ['iptables', 'ip6tables']) {
        for (const protocol of ['tcp', 'udp']) {
          await sb().exec(target, iptables, ['-t', 'mangle', '-A', 'POSTROUTING', '-p', protocol, '-j', 'CHECKSUM', '--checksum-fill']);
        }
      }
    }
    for (const p of sb().pods) startEchoServer(sb(), p, p.name.replace('-pod', ''), { tcp: ECHO_PORT, udp: ECHO_PORT });

    for (const n of sb().nodes) {
      mkdirSync(pinDir(n.name));
      const dp = new NodePortDatapath({ bpffsDir: pinDir(n.name), interfaces: [n.underlayIface], netns: `/var/run/netns/${n.netns}`, snatPorts: SNAT_PORTS });
      datapaths.set(n.name, dp);
      await dp.attach();
      const map = mapFor(n, SERVICES);
      writeServices(pinDir(n.name), map);
      await dp.apply(map);
    }
    // The echo servers are up once each answers its node directly.
    for (const p of sb().pods) {
      for (let attempt = 0; ; attempt++) {
        const [line = ''] = await ask(node(p.node), 'tcp', p.ip, ECHO_PORT).catch(() => ['']);
        if (line.startsWith(`${p.name.replace('-pod', '')} `)) break;
        if (attempt > 100) throw new Error(`the echo server in ${p.name} did not come up: ${line}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });

  after(async () => {
    const errors: unknown[] = [];
    for (const dp of datapaths.values()) await dp.cleanup().catch((e: unknown) => errors.push(e));
    await sandbox?.destroy().catch((e: unknown) => errors.push(e));
    if (mounted && bpffs !== undefined) await runCommand('umount', [bpffs]).catch((e: unknown) => errors.push(e));
    if (bpffs !== undefined) rmSync(bpffs, { recursive: true, force: true });
    if (errors.length > 0) throw errors[0];
  });

  test('NodePort to a backend on the same node: TCP and UDP, the client address kept', async () => {
    for (const protocol of ['tcp', 'udp'] as const) {
      const lines = await ask(client(), protocol, node('a').underlayIP, 30001, { count: 3 });
      assert.deepEqual(lines.map(backendOf), ['a0', 'a0', 'a0'], lines.join(', '));
      for (const line of lines) assert.equal(seen(line)[0], client().underlayIP, line);
    }
  });

  test('NodePort to a backend on another node: masqueraded to the node, replies come back through it', async () => {
    for (const protocol of ['tcp', 'udp'] as const) {
      const lines = await ask(client(), protocol, node('b').underlayIP, 30001, { count: 3 });
      assert.deepEqual(lines.map(backendOf), ['a0', 'a0', 'a0'], lines.join(', '));
      for (const line of lines) {
        const [address, port] = seen(line);
        assert.equal(address, node('b').underlayIP, line);
        assert.ok(port >= SNAT_PORTS.min && port <= SNAT_PORTS.max, `masquerade port ${port} out of range: ${line}`);
      }
    }
    const stats = datapath('b').stats();
    assert.ok(stats.replyIngress > 0n && stats.forward > 0n, JSON.stringify(stats, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
  });

  test('ExternalIP (backend on another node) and LoadBalancer IP (backend on this node)', async () => {
    for (const protocol of ['tcp', 'udp'] as const) {
      const external = await ask(client(), protocol, EXTERNAL_IP, 80, { count: 2 });
      assert.deepEqual(external.map(backendOf), ['b0', 'b0'], external.join(', '));
      for (const line of external) assert.equal(seen(line)[0], node('a').underlayIP, line);
      const balanced = await ask(client(), protocol, LOAD_BALANCER_IP, 80, { count: 2 });
      assert.deepEqual(balanced.map(backendOf), ['a1', 'a1'], balanced.join(', '));
      for (const line of balanced) assert.equal(seen(line)[0], client().underlayIP, line);
    }
  });

  test('externalTrafficPolicy Local: the client address kept, dropped on a node without a local endpoint', async () => {
    for (const protocol of ['tcp', 'udp'] as const) {
      const lines = await ask(client(), protocol, node('a').underlayIP, 30002, { count: 2 });
      assert.deepEqual(lines.map(backendOf), ['a1', 'a1'], lines.join(', '));
      for (const line of lines) assert.equal(seen(line)[0], client().underlayIP, line);
      const before = datapath('b').stats().dropNoEndpoint;
      assert.deepEqual(await ask(client(), protocol, node('b').underlayIP, 30002, { timeoutMs: 700 }), ['ERROR ETIMEDOUT']);
      assert.ok(datapath('b').stats().dropNoEndpoint > before);
    }
  });

  test('a service without endpoints: TCP is refused at once (a reset), UDP is dropped', async () => {
    for (const address of [node('a').underlayIP, node('a').underlayIPv6 as string]) {
      const before = datapath('a').stats();
      assert.deepEqual(await ask(client(), 'tcp', address, 30003, { timeoutMs: 3000 }), ['ERROR ECONNREFUSED'], address);
      assert.deepEqual(await ask(client(), 'udp', address, 30003, { timeoutMs: 700 }), ['ERROR ETIMEDOUT'], address);
      const after = datapath('a').stats();
      assert.equal(after.reject, before.reject + 1n, `${address}: one reset`);
      assert.ok(after.dropNoEndpoint > before.dropNoEndpoint, address);
    }
  });

  test('loadBalancerSourceRanges: other sources are dropped, the LB IP only', async () => {
    const map = mapFor(node('a'), SERVICES);
    const elsewhere = { ...map, servicePorts: map.servicePorts.map((p) => (p.loadBalancerSourceRanges.length > 0 ? { ...p, loadBalancerSourceRanges: [parseCidr('10.0.0.0/8')] } : p)) };
    try {
      assert.equal(await datapath('a').apply(elsewhere), 4, 'two ranges out, two in (TCP and UDP)');
      assert.equal(await datapath('a').apply(elsewhere), 0, 'nothing differs');
      assert.deepEqual(await ask(client(), 'tcp', LOAD_BALANCER_IP, 80, { timeoutMs: 700 }), ['ERROR ETIMEDOUT']);
      assert.ok(datapath('a').stats().dropSourceRange > 0n);
    } finally {
      await datapath('a').apply(map);
    }
    assert.equal(backendOf((await ask(client(), 'tcp', LOAD_BALANCER_IP, 80))[0] ?? ''), 'a1');
  });

  test('ClientIP affinity keeps one backend per client; without it new connections spread', async () => {
    const sticky = await ask(client(), 'tcp', node('a').underlayIP, 30004, { count: 8 });
    assert.equal(new Set(sticky.map(backendOf)).size, 1, sticky.join(', '));
    assert.ok(BACKENDS.includes(backendOf(sticky[0] ?? '')), sticky.join(', '));
    const spread = await ask(client(), 'tcp', node('a').underlayIP, 30005, { count: 30 });
    assert.ok(spread.every((l) => BACKENDS.includes(backendOf(l))), spread.join(', '));
    assert.ok(new Set(spread.map(backendOf)).size > 1, `30 connections all went to one backend: ${spread.join(', ')}`);
  });

  test('IPv6: NodePort to a local backend and, masqueraded, to one on another node', async () => {
    const a6 = node('a').underlayIPv6 as string;
    const b6 = node('b').underlayIPv6 as string;
    for (const protocol of ['tcp', 'udp'] as const) {
      const local = await ask(client(), protocol, a6, 30001, { count: 2 });
      assert.deepEqual(local.map(backendOf), ['a0', 'a0'], local.join(', '));
      for (const line of local) assert.equal(seen(line)[0], client().underlayIPv6, line);
      const remote = await ask(client(), protocol, b6, 30001, { count: 2 });
      assert.deepEqual(remote.map(backendOf), ['a0', 'a0'], remote.join(', '));
      for (const line of remote) assert.equal(seen(line)[0], b6, line);
    }
  });

  test('UDP on one socket is one flow, masqueraded to one port; it moves when its backend leaves the service', async () => {
    const n = node('b');
    const moving: ServiceSpec = { name: 'moving', nodePort: 30006, endpoints: ['a-pod0'] };
    writeServices(pinDir('b'), mapFor(n, [...SERVICES, moving]));
    // The backend moves once the flow has reached a-pod0, with most of it still to come.
    const pod0 = sb().pods.find((p) => p.name === 'a-pod0');
    assert.ok(pod0);
    const received = async () => (await counters(pod0))['UdpInDatagrams'] ?? 0;
    const start = await received();
    const flow = ask(client(), 'udp', n.underlayIP, 30006, { count: 40, sameSocket: true, intervalMs: 100 });
    await until('the flow to reach a-pod0', async () => (await received()) >= start + 3, 20_000);
    // a-pod1 takes slot 1 in place (ids of the services before it stay the same).
    writeServices(pinDir('b'), mapFor(n, [...SERVICES, { ...moving, endpoints: ['a-pod1'] }]));
    const lines = await flow;
    const order = lines.map(backendOf);
    const first = order.indexOf('a1');
    assert.ok(order[0] === 'a0' && first > 0 && order.slice(first).every((b) => b === 'a1'), order.join(' '));
    // One flow, one masquerade port, from the first packet to the last (the new backend's too).
    assert.equal(new Set(lines.map((l) => seen(l)[1])).size, 1, lines.join(', '));
  });

  test('receivers found no bad checksum in anything the programs rewrote', async () => {
    for (const target of [client(), ...sb().pods]) {
      const c = await counters(target);
      const name = typeof target === 'string' ? target : target.netns;
      assert.equal(c['TcpInCsumErrors'] ?? 0, 0, `${name}: TCP checksum errors`);
      assert.equal(c['UdpInCsumErrors'] ?? 0, 0, `${name}: UDP checksum errors`);
      assert.equal(c['Udp6InCsumErrors'] ?? 0, 0, `${name}: UDP/IPv6 checksum errors`);
      assert.ok((c['TcpInSegs'] ?? 0) > 0, `${name} received TCP segments`);
    }
  });

  test('a new NodePortDatapath re-adopts the pinned links without attaching again', async () => {
    const n = node('a');
    const pins = readdirSync(join(pinDir('a'), 'links')).sort();
    assert.equal(pins.length, 2, pins.join(', '));
    const again = new NodePortDatapath({ bpffsDir: pinDir('a'), interfaces: [n.underlayIface], netns: `/var/run/netns/${n.netns}`, snatPorts: SNAT_PORTS });
    await again.attach();
    assert.deepEqual(again.attachments.map((a) => [a.direction, a.mode, a.attached]), [['ingress', 'tcx', false], ['egress', 'tcx', false]]);
    assert.deepEqual(readdirSync(join(pinDir('a'), 'links')).sort(), pins);
    const lines = await ask(client(), 'tcp', n.underlayIP, 30001);
    assert.equal(backendOf(lines[0] ?? ''), 'a0', lines.join(', '));
  });

  test('clsact: the data path works as a filter, and removing it leaves the qdisc and other filters', async () => {
    const n = node('b');
    const netns = `/var/run/netns/${n.netns}`;
    await datapath('b').cleanup();
    assert.deepEqual(await ask(client(), 'tcp', n.underlayIP, 30001, { timeoutMs: 700 }), ['ERROR ECONNREFUSED'], 'no translation once detached');
    // Someone else's filter, on a clsact qdisc that is theirs too.
    await sb().exec(n, 'tc', ['qdisc', 'add', 'dev', n.underlayIface, 'clsact']);
    for (const direction of ['ingress', 'egress']) {
      await sb().exec(n, 'tc', ['filter', 'add', 'dev', n.underlayIface, direction, 'prio', '10', 'handle', '1', 'bpf', 'obj', bpfFixturePath('addon_fixture'), 'sec', 'tc', 'da']);
    }
    const clsact = new NodePortDatapath({ bpffsDir: pinDir('b'), interfaces: [n.underlayIface], netns, snatPorts: SNAT_PORTS, tcMode: 'clsact' });
    datapaths.set('b', clsact);
    await clsact.attach();
    assert.deepEqual(clsact.attachments.map((a) => [a.direction, a.mode, a.attached]), [['ingress', 'clsact', true], ['egress', 'clsact', true]]);
    writeServices(pinDir('b'), mapFor(n, SERVICES));
    await clsact.apply(mapFor(n, SERVICES));
    for (const protocol of ['tcp', 'udp'] as const) {
      const lines = await ask(client(), protocol, n.underlayIP, 30001);
      assert.equal(backendOf(lines[0] ?? ''), 'a0', lines.join(', '));
      assert.equal(seen(lines[0] ?? '')[0], n.underlayIP);
    }
    await clsact.cleanup();
    for (const direction of ['ingress', 'egress']) {
      const filters = (await sb().exec(n, 'tc', ['filter', 'show', 'dev', n.underlayIface, direction])).stdout;
      assert.match(filters, /pref 10 bpf/, `${direction}: ${filters}`);
      assert.doesNotMatch(filters, /pref 1 bpf/, `${direction}: ${filters}`);
    }
    assert.match((await sb().exec(n, 'tc', ['qdisc', 'show', 'dev', n.underlayIface])).stdout, /clsact/);
  });

  test('a re-created interface gets a new link; a tun device gets the programs without a link layer', async () => {
    const n = node('b');
    const netns = `/var/run/netns/${n.netns}`;
    const dir = pinDir('b-spare');
    mkdirSync(dir);
    await sb().exec(n, 'ip', ['link', 'add', 'spare0', 'type', 'veth', 'peer', 'name', 'spare1']);
    await sb().exec(n, 'ip', ['tuntap', 'add', 'dev', 'tun0', 'mode', 'tun']);
    const spare = new NodePortDatapath({ bpffsDir: dir, interfaces: ['spare0', 'tun0'], netns });
    datapaths.set('b-spare', spare);
    await spare.attach();
    assert.deepEqual(spare.attachments.map((a) => [a.interface, a.program, a.attached]), [
      ['spare0', 'np_ingress', true], ['spare0', 'np_egress', true], ['tun0', 'np_ingress_l3', true], ['tun0', 'np_egress_l3', true],
    ]);
    const pinsOf = (iface: string) => readdirSync(join(dir, 'links')).filter((name) => name.startsWith(`nodeport-${iface}-`)).sort();
    const before = pinsOf('spare0');
    await sb().exec(n, 'ip', ['link', 'del', 'spare0']);
    await sb().exec(n, 'ip', ['link', 'add', 'spare0', 'type', 'veth', 'peer', 'name', 'spare1']);
    await spare.attach();
    assert.deepEqual(spare.attachments.map((a) => [a.interface, a.attached]), [['spare0', true], ['spare0', true], ['tun0', false], ['tun0', false]]);
    const after = pinsOf('spare0');
    assert.equal(after.length, 2);
    assert.ok(after.every((pin) => !before.includes(pin)), `old ${before.join(', ')}, new ${after.join(', ')}`);
    // Interfaces gone altogether: cleanup still removes the links and pins.
    await sb().exec(n, 'ip', ['link', 'del', 'spare0']);
    await sb().exec(n, 'ip', ['link', 'del', 'tun0']);
    await spare.cleanup();
    assert.deepEqual(readdirSync(dir).filter((name) => name === 'links' || name.startsWith('wl_np_')), []);
  });

  test('the mesh interface gets np_ingress_mesh once it exists, and again when it is re-created', async () => {
    const n = node('b');
    const dir = pinDir('b-mesh');
    mkdirSync(dir);
    await sb().exec(n, 'ip', ['link', 'add', 'mspare0', 'type', 'veth', 'peer', 'name', 'mspare1']);
    const mesh = new NodePortDatapath({ bpffsDir: dir, interfaces: ['mspare0'], meshInterface: 'wgmesh0', netns: `/var/run/netns/${n.netns}` });
    datapaths.set('b-mesh', mesh);
    await mesh.attach();
    assert.deepEqual(mesh.attachments.map((a) => a.interface), ['mspare0', 'mspare0'], 'a missing mesh interface is skipped');
    // Every program of the object while it is loaded: those attached, and those this process holds.
    const loadedAtStart = (await ownedIds({ maps: pinnedIds(dir).maps })).progs;
    // A leader's WireGuard device comes up after the proxy started: the next apply attaches to it.
    await sb().exec(n, 'ip', ['tuntap', 'add', 'dev', 'wgmesh0', 'mode', 'tun']);
    await mesh.apply(mapFor(n, []));
    const onMesh = () => mesh.attachments.filter((a) => a.interface === 'wgmesh0').map((a) => [a.program, a.attached]);
    assert.deepEqual(onMesh(), [['np_ingress_mesh', true], ['np_egress_l3', true]]);
    const pinsOf = () => readdirSync(join(dir, 'links')).filter((name) => name.startsWith('nodeport-wgmesh0-')).sort();
    const before = pinsOf();
    assert.ok(
      before.map((pin) => programOf(join(dir, 'links', pin))).every((id) => loadedAtStart.has(id)),
      `the programs loaded at start serve the mesh interface too (no second load): ${[...loadedAtStart].join(', ')}`,
    );
    await mesh.apply(mapFor(n, []));
    assert.deepEqual(pinsOf(), before, 'an unchanged mesh interface is left as it is');
    await sb().exec(n, 'ip', ['link', 'del', 'wgmesh0']);
    await sb().exec(n, 'ip', ['tuntap', 'add', 'dev', 'wgmesh0', 'mode', 'tun']);
    await mesh.apply(mapFor(n, []));
    assert.deepEqual(onMesh(), [['np_ingress_mesh', true], ['np_egress_l3', true]], 're-created: attached again');
    const after = pinsOf();
    assert.equal(after.length, 2);
    assert.ok(after.every((pin) => !before.includes(pin)), `old ${before.join(', ')}, new ${after.join(', ')}`);
    await sb().exec(n, 'ip', ['link', 'del', 'mspare0']);
    await sb().exec(n, 'ip', ['link', 'del', 'wgmesh0']);
    await mesh.cleanup();
    assert.deepEqual(readdirSync(dir).filter((name) => name === 'links' || name.startsWith('wl_np_')), []);
  });

  test('an attach that fails half-way detaches what it attached', async () => {
    const n = node('b');
    const dir = pinDir('b-rollback');
    const links = join(dir, 'links');
    mkdirSync(links, { recursive: true });
    const ifindex = JSON.parse((await sb().exec(n, 'ip', ['-j', 'link', 'show', 'dev', n.underlayIface])).stdout)[0].ifindex as number;
    // A directory where the egress link's pin belongs: the ingress program is attached by then.
    const blocker = join(links, `nodeport-${n.underlayIface}-${ifindex}-egress`);
    mkdirSync(blocker);
    const before = await linkIds();
    const failing = new NodePortDatapath({ bpffsDir: dir, interfaces: [n.underlayIface], netns: `/var/run/netns/${n.netns}` });
    datapaths.set('b-rollback', failing);
    // It fails at the egress pin, after the ingress program was attached.
    await assert.rejects(failing.attach(), (e: unknown) => e instanceof BpfError && e.message.includes(basename(blocker)));
    assert.deepEqual((await linkIds()).sort(), before.sort(), 'no link of this attach remains');
    assert.deepEqual(readdirSync(links), [basename(blocker)]);
    rmSync(blocker, { recursive: true });
    await failing.cleanup();
  });

  test('cleanup detaches the programs and removes its pins, and only its own', async () => {
    const n = node('a');
    const dir = pinDir('a');
    const pinnedLinks = readdirSync(join(dir, 'links'));
    assert.equal(pinnedLinks.length, 2);
    assert.ok((await linkIds()).length >= 2, 'our tcx links are there before');
    await datapath('a').cleanup();
    const left = readdirSync(dir);
    for (const { name } of Object.values(NODEPORT_MAPS)) assert.ok(!left.includes(name), `pin ${name} removed`);
    for (const name of Object.values(MAP_NAMES)) assert.ok(left.includes(name), `the proxy's pin ${name} stays`);
    assert.ok(!left.includes('links'), 'the empty links directory goes');
    assert.deepEqual(await linkIds(), [], 'no link of ours remains (node b was cleaned up before)');
    assert.deepEqual(await ask(client(), 'tcp', n.underlayIP, 30001, { timeoutMs: 700 }), ['ERROR ECONNREFUSED'], 'the node itself answers: nothing translates any more');
    await datapath('a').cleanup();
  });
});
