// Integration: `--service-proxy userspace` on the real kernel. Two nodes with pods and a client
// outside the cluster, as network namespaces; the proxy runs on each node in a process of its own
// (userspace-runner.ts: its sockets must live in the node's namespace), fed service maps built
// here. Backends are echo servers that name themselves and the source address they saw.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { SpawnedProcess } from '../../src/host/command.js';
import type { PortRange } from '../../src/dataplane/userspace/index.js';
import { type Family, parseCidr, parseIp } from '../../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../../src/model/service.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import { createSandbox, type NetnsTarget, type Sandbox, type SandboxNode } from '../../src/sandbox/index.js';
import { IPTABLES_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('userspace proxy integration tests', [
  ...IPTABLES_TOOLS,
  ['conntrack', ['--version']],
  ['prlimit', ['--version']],
  ['ss', ['-V']],
]);

const RUNNER = join(dirname(fileURLToPath(import.meta.url)), 'userspace-runner.ts');
const EXTERNAL_IP = '192.0.2.10';
const LOAD_BALANCER_IP = '192.0.2.20';
/** A pod-network address on node b that silently drops everything (a blackhole route). */
const BLACKHOLE = '10.244.2.250';
const ECHO_PORT = 8080;
const BACKENDS = ['a0', 'a1', 'b0'];

interface PortSpec {
  readonly name: string;
  readonly protocol: 'TCP' | 'UDP';
  readonly port: number;
  readonly nodePort?: number;
}

interface ServiceSpec {
  readonly name: string;
  readonly clusterIPs: readonly string[];
  readonly ports: readonly PortSpec[];
  /** Pod names ('a-pod0') or plain addresses. */
  readonly endpoints: readonly string[];
  readonly externalIPs?: readonly string[];
  readonly loadBalancerIPs?: readonly string[];
  readonly affinitySeconds?: number;
  readonly externalPolicyLocal?: boolean;
  /** The endpoints' port; default the echo servers'. */
  readonly targetPort?: number;
}

const HTTP: PortSpec = { name: 'http', protocol: 'TCP', port: 80 };
const DNS: PortSpec = { name: 'dns', protocol: 'UDP', port: 53 };
const THREE = ['a-pod0', 'a-pod1', 'b-pod0'];

const WEB: ServiceSpec = {
  name: 'web',
  clusterIPs: ['10.96.0.10', 'fd96::10'],
  ports: [{ ...HTTP, nodePort: 30080 }, { ...DNS, nodePort: 30053 }],
  endpoints: THREE,
  externalIPs: [EXTERNAL_IP],
  loadBalancerIPs: [LOAD_BALANCER_IP],
};
const STICKY: ServiceSpec = { name: 'sticky', clusterIPs: ['10.96.0.11'], ports: [HTTP], endpoints: THREE, affinitySeconds: 1 };
const LOCAL: ServiceSpec = { name: 'local', clusterIPs: ['10.96.0.12'], ports: [{ ...HTTP, nodePort: 30081 }], endpoints: ['a-pod1'], externalPolicyLocal: true };
const EMPTY: ServiceSpec = { name: 'empty', clusterIPs: ['10.96.0.13'], ports: [HTTP, DNS], endpoints: [] };
const FLOW: ServiceSpec = { name: 'flow', clusterIPs: ['10.96.0.15'], ports: [DNS], endpoints: ['a-pod0'] };
const SLOW: ServiceSpec = { name: 'slow', clusterIPs: ['10.96.0.16'], ports: [HTTP], endpoints: [BLACKHOLE, 'a-pod0'] };
const BASE = [WEB, STICKY, LOCAL, EMPTY, FLOW, SLOW];
/** Node b's proxy ports; it overlaps the NodePorts on purpose (they are held first, so skipped). */
const RANGE_B: PortRange = { min: 30050, max: 30100 };

interface RunnerResult {
  readonly seq: number;
  readonly ok: boolean;
  readonly written?: number;
  readonly error?: string;
  readonly failures?: readonly { what: string; reason: string }[];
  readonly stats?: { proxies: { key: string; port: number; connections: number; bufferedBytes: number }[]; nodePorts: Record<string, string> };
}

function bigintsAsObjects(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? { $bigint: value.toString() } : value;
}

function hasExited(child: SpawnedProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** One userspace-runner.ts process inside a node's namespace. */
class ProxyRunner {
  private seq = 0;

  private constructor(
    readonly node: SandboxNode,
    readonly dir: string,
    readonly child: SpawnedProcess,
  ) {}

  /** Starts with a soft open-file limit of 1024, so that the proxy's raising of it shows. */
  static async start(sandbox: Sandbox, node: SandboxNode, dir: string, proxyPortRange?: PortRange): Promise<ProxyRunner> {
    await mkdir(dir, { recursive: true });
    const hostAddresses = [node.underlayIP, node.underlayIPv6].filter((a) => a !== undefined);
    await writeFile(join(dir, 'options.json'), JSON.stringify({ hostAddresses, proxyPortRange }));
    const logFile = join(dir, 'runner.log');
    const args = ['--nofile=1024:', process.execPath, '--import', import.meta.resolve('tsx'), RUNNER, dir];
    const child = sandbox.spawn(node, 'prlimit', args, { stdout: { file: logFile }, stderr: { file: logFile } });
    const runner = new ProxyRunner(node, dir, child);
    await runner.waitFor('ready', 30_000);
    return runner;
  }

  get logFile(): string {
    return join(this.dir, 'runner.log');
  }

  private async waitFor(name: string, timeoutMs: number): Promise<string> {
    const file = join(this.dir, name);
    await until(`${name} from the proxy runner on ${this.node.name}`, () => existsSync(file) || hasExited(this.child), timeoutMs, 20);
    if (!existsSync(file)) {
      const log = await readFile(this.logFile, 'utf8').catch(() => '');
      throw new Error(`the proxy runner on ${this.node.name} exited (${this.child.exitCode ?? this.child.signalCode}): ${log.slice(-2000)}`);
    }
    return readFile(file, 'utf8');
  }

  async send(command: { command: 'apply'; map: ServiceMap } | { command: 'cleanup' | 'stats' }): Promise<RunnerResult> {
    const seq = ++this.seq;
    await writeFile(join(this.dir, 'command.json'), JSON.stringify({ ...command, seq }, bigintsAsObjects));
    process.kill(this.child.pid, 'SIGHUP');
    return JSON.parse(await this.waitFor(`result-${seq}.json`, 30_000)) as RunnerResult;
  }

  async stats(): Promise<NonNullable<RunnerResult['stats']>> {
    const result = await this.send({ command: 'stats' });
    assert.ok(result.stats, result.error);
    return result.stats;
  }
}

describe('userspace service proxy in a sandbox', { skip }, () => {
  let sandbox: Sandbox;
  let workDir: string;
  const runners = new Map<string, ProxyRunner>();
  let anyFailed = false;

  const node = (name: string): SandboxNode => sandbox.node(name);
  const pod = (name: string) => {
    const found = sandbox.pods.find((p) => p.name === name);
    assert.ok(found, `pod ${name}`);
    return found;
  };
  const client = () => sandbox.outside[0] as NonNullable<Sandbox['outside'][0]>;
  const runner = (name: string): ProxyRunner => runners.get(name) as ProxyRunner;

  /** What `node` must program for `services` (the pure service map's job, done by hand here). */
  function mapFor(self: SandboxNode, services: readonly ServiceSpec[]): ServiceMap {
    const servicePorts: ServicePort[] = [];
    for (const svc of services) {
      const clusterIPs = svc.clusterIPs.map(parseIp);
      const families = new Set(clusterIPs.map((ip) => ip.family));
      const port = svc.targetPort ?? ECHO_PORT;
      const endpoints: ServiceBackend[] = svc.endpoints.flatMap((name): ServiceBackend[] => {
        if (/^[\d.:a-f]+$/.test(name)) return [{ ip: parseIp(name), port, local: false }];
        const p = pod(name);
        const local = p.node === self.name;
        const ips = [p.ip, ...(p.ipv6 === undefined ? [] : [p.ipv6])].map(parseIp).filter((ip) => families.has(ip.family));
        return ips.map((ip) => ({ ip, port, local }));
      });
      for (const spec of svc.ports) {
        servicePorts.push({
          service: `default/${svc.name}`,
          portName: spec.name,
          protocol: spec.protocol,
          clusterIPs,
          port: spec.port,
          ...(spec.nodePort === undefined ? {} : { nodePort: spec.nodePort }),
          externalIPs: (svc.externalIPs ?? []).map(parseIp),
          loadBalancerIPs: (svc.loadBalancerIPs ?? []).map(parseIp),
          loadBalancerSourceRanges: [],
          ...(svc.affinitySeconds === undefined ? {} : { sessionAffinityTimeoutSeconds: svc.affinitySeconds }),
          externalPolicyLocal: svc.externalPolicyLocal === true,
          internalPolicyLocal: false,
          clusterEndpoints: endpoints,
          internalEndpoints: endpoints,
          externalEndpoints: svc.externalPolicyLocal === true ? endpoints.filter((e) => e.local) : endpoints,
        });
      }
    }
    servicePorts.sort((x, y) => (x.service === y.service ? x.portName.localeCompare(y.portName) : x.service.localeCompare(y.service)));
    return {
      node: self.name,
      nodePortAddresses: [self.underlayIP, self.underlayIPv6].filter((a) => a !== undefined).map(parseIp),
      clusterCIDRs: [parseCidr('10.244.0.0/16'), parseCidr('fd44::/16')],
      servicePorts,
    };
  }

  /** Applies on both nodes; returns each node's result. */
  async function applyAll(services: readonly ServiceSpec[]): Promise<Record<string, RunnerResult>> {
    const results: Record<string, RunnerResult> = {};
    for (const [name, r] of runners) results[name] = await r.send({ command: 'apply', map: mapFor(node(name), services) });
    return results;
  }

  async function applyAllOk(services: readonly ServiceSpec[]): Promise<void> {
    for (const [name, result] of Object.entries(await applyAll(services))) assert.ok(result.ok, `apply on ${name}: ${result.error}`);
  }

  /** Runs body, then puts the BASE services back on both nodes, also when body fails. */
  async function thenBase(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } finally {
      await applyAllOk(BASE);
    }
  }

  const backendOf = (line: string): string => line.split(' ')[0] === 'ERROR' ? line : (line.split(' ')[0] as string);
  const backends = (lines: readonly string[]): string[] => lines.map(backendOf);
  /** The address the backend saw: `a0 10.244.1.1:40312` → 10.244.1.1. */
  const seenAddress = (line: string): string => {
    const seen = line.split(' ')[1] ?? '';
    return seen.slice(0, seen.lastIndexOf(':'));
  };
  const ask = (from: NetnsTarget, protocol: 'tcp' | 'udp', host: string, port: number, opts: Parameters<typeof echoRequests>[5] = {}) =>
    echoRequests(sandbox, from, protocol, host, port, opts);
  const saved = async (n: SandboxNode, family: Family): Promise<string> =>
    (await sandbox.exec(n, family === 4 ? 'iptables-save' : 'ip6tables-save', [])).stdout;
  /** Ports of listening TCP and bound UDP sockets: `ss` columns are Netid State Recv-Q Send-Q Local Peer. */
  const listeningPorts = async (n: SandboxNode): Promise<number[]> =>
    (await sandbox.exec(n, 'ss', ['-Hltun'])).stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const local = l.trim().split(/\s+/)[4] ?? '';
        return Number(local.slice(local.lastIndexOf(':') + 1));
      });

  const check = (name: string, body: () => Promise<void>) =>
    test(name, async () => {
      try {
        await body();
      } catch (err) {
        anyFailed = true;
        throw err;
      }
    });

  before(async () => {
    sandbox = await createSandbox({
      nodes: [
        { name: 'a', underlayAddress: '172.31.0.11/16', underlayAddress6: 'fd31::11/64', podCIDRs: ['10.244.1.0/24', 'fd44:1::/64'], pods: 2 },
        { name: 'b', underlayAddress: '172.31.0.12/16', underlayAddress6: 'fd31::12/64', podCIDRs: ['10.244.2.0/24', 'fd44:2::/64'], pods: 1 },
      ],
      outside: [{ name: 'client', underlayAddress: '172.31.1.1/16' }],
    });
    workDir = await mkdtemp(join(tmpdir(), 'wl-userspace-'));
    const routes: [string, string[][]][] = [
      // Pod networks over the underlay; service and external addresses out of eth0, so that the host
      // has a route (and a source address) for them before its OUTPUT rules rewrite the destination.
      ['a', [['10.244.2.0/24', 'via', '172.31.0.12'], ['fd44:2::/64', 'via', 'fd31::12']]],
      ['b', [['10.244.1.0/24', 'via', '172.31.0.11'], ['fd44:1::/64', 'via', 'fd31::11'], ['blackhole', `${BLACKHOLE}/32`]]],
    ];
    for (const [name, list] of routes) {
      for (const route of [...list, ['10.96.0.0/16', 'dev', 'eth0'], ['fd96::/112', 'dev', 'eth0'], ['192.0.2.0/24', 'dev', 'eth0']]) {
        await sandbox.exec(node(name), 'ip', ['route', 'add', ...route]);
      }
    }
    // The outside client reaches external and load-balancer IPs through node a, as a router would.
    await sandbox.exec(client(), 'ip', ['route', 'add', '192.0.2.0/24', 'via', node('a').underlayIP]);
    for (const p of THREE) startEchoServer(sandbox, pod(p), p.replace('-pod', ''), { tcp: ECHO_PORT, udp: ECHO_PORT });
    runners.set('a', await ProxyRunner.start(sandbox, node('a'), join(workDir, 'a')));
    runners.set('b', await ProxyRunner.start(sandbox, node('b'), join(workDir, 'b'), RANGE_B));
    await applyAllOk(BASE);
    await until('the echo servers', async () => backends(await ask(pod('a-pod1'), 'tcp', '10.96.0.10', 80)).every((b) => BACKENDS.includes(b)), 10_000, 100);
  });

  after(async () => {
    if (anyFailed) {
      for (const r of runners.values()) {
        const log = await readFile(r.logFile, 'utf8').catch(() => '');
        process.stderr.write(`--- proxy runner on ${r.node.name} (last lines)\n${log.split('\n').slice(-40).join('\n')}\n`);
      }
    }
    await sandbox?.destroy();
    if (workDir !== undefined) await rm(workDir, { recursive: true, force: true });
  });

  check('ClusterIP over TCP and UDP, IPv4 and IPv6, from a pod on the same node, a pod on another node and the node', async () => {
    for (const from of [pod('a-pod1'), pod('b-pod0'), node('a')]) {
      for (const host of ['10.96.0.10', 'fd96::10']) {
        for (const [protocol, port] of [['tcp', 80], ['udp', 53]] as const) {
          const lines = await ask(from, protocol, host, port, { count: 3 });
          assert.ok(backends(lines).every((b) => BACKENDS.includes(b)), `${protocol} ${host} from ${from.netns}: ${lines.join(', ')}`);
          // The limitation of the mode: backends see the proxy, never a pod client.
          if ('node' in from) assert.ok(!lines.map(seenAddress).some((a) => a === from.ip || a === from.ipv6), lines.join(', '));
        }
      }
    }
  });

  check('NodePort, ExternalIP and LoadBalancer IP from outside; NodePort from a pod and from the node', async () => {
    const targets: [NetnsTarget, 'tcp' | 'udp', string, number][] = [
      [client(), 'tcp', node('a').underlayIP, 30080],
      [client(), 'udp', node('a').underlayIP, 30053],
      [client(), 'tcp', node('b').underlayIP, 30080],
      [client(), 'tcp', EXTERNAL_IP, 80],
      [client(), 'udp', EXTERNAL_IP, 53],
      [client(), 'tcp', LOAD_BALANCER_IP, 80],
      [pod('a-pod1'), 'tcp', node('b').underlayIP, 30080],
      [node('a'), 'tcp', node('a').underlayIP, 30080],
      [node('a'), 'udp', node('a').underlayIP, 30053],
      [node('a'), 'tcp', EXTERNAL_IP, 80],
    ];
    for (const [from, protocol, host, port] of targets) {
      const lines = await ask(from, protocol, host, port, { count: 3 });
      assert.ok(backends(lines).every((b) => BACKENDS.includes(b)), `${protocol} ${host}:${port} from ${typeof from === 'string' ? from : from.netns}: ${lines.join(', ')}`);
    }
  });

  check('a proxy port range is used; the NodePorts inside it stay held', async () => {
    const stats = await runner('b').stats();
    assert.deepEqual([...new Set(Object.keys(stats.nodePorts).map((key) => Number(key.split('/')[2])))].sort(), [30053, 30080, 30081]);
    for (const p of stats.proxies) {
      assert.ok(p.port >= RANGE_B.min && p.port <= RANGE_B.max, `${p.key} on ${p.port}`);
      // Keys: `default/web:dns/UDP internal IPv4` and `UDP/IPv4/30053`.
      const [servicePort = '', , family] = p.key.split(' ');
      const protocol = servicePort.slice(servicePort.lastIndexOf('/') + 1);
      assert.equal(stats.nodePorts[`${protocol}/${family}/${p.port}`], undefined, `${p.key} took a held NodePort`);
    }
  });

  check('requests spread over every endpoint, round-robin', async () => {
    const answers = backends(await ask(pod('a-pod1'), 'tcp', '10.96.0.10', 80, { count: 9 }));
    assert.deepEqual([...answers].sort(), ['a0', 'a0', 'a0', 'a1', 'a1', 'a1', 'b0', 'b0', 'b0'], answers.join(', '));
  });

  check('ClientIP affinity sticks while used and expires after its timeout', async () => {
    const sticky = backends(await ask(pod('a-pod1'), 'tcp', '10.96.0.11', 80, { count: 6, intervalMs: 100 }));
    assert.equal(new Set(sticky).size, 1, sticky.join(', '));
    await sleep(1500);
    // Round-robin moved on meanwhile: after the timeout the client gets the next endpoint.
    const [next] = backends(await ask(pod('a-pod1'), 'tcp', '10.96.0.11', 80));
    assert.notEqual(next, sticky[0]);
  });

  check('externalTrafficPolicy Local: the local endpoint from outside, DROP on a node without one, all endpoints from inside', async () => {
    assert.deepEqual(backends(await ask(client(), 'tcp', node('a').underlayIP, 30081, { count: 2 })), ['a1', 'a1']);
    assert.deepEqual(await ask(client(), 'tcp', node('b').underlayIP, 30081, { timeoutMs: 1000 }), ['ERROR ETIMEDOUT'], 'dropped, not refused');
    for (const from of [pod('b-pod0'), node('b')]) assert.deepEqual(backends(await ask(from, 'tcp', node('b').underlayIP, 30081)), ['a1']);
  });

  check('a service without endpoints refuses at once, TCP and UDP, from a pod and from the node', async () => {
    for (const from of [pod('a-pod1'), node('a')]) {
      for (const [protocol, port] of [['tcp', 80], ['udp', 53]] as const) {
        // A refusal, not a timeout: the client reports which one ended the request.
        assert.deepEqual(await ask(from, protocol, '10.96.0.13', port, { timeoutMs: 3000 }), ['ERROR ECONNREFUSED'], `${protocol} from ${from.netns}`);
      }
    }
  });

  check('a dial that gets no answer moves on to the next endpoint after 250 ms', async () => {
    assert.deepEqual(backends(await ask(pod('a-pod1'), 'tcp', '10.96.0.16', 80, { count: 4, timeoutMs: 2000 })), ['a0', 'a0', 'a0', 'a0']);
  });

  check('a removed endpoint gets no new connection, and a running UDP flow moves to another backend', () =>
    thenBase(async () => {
      await applyAllOk([{ ...WEB, endpoints: ['a-pod0', 'b-pod0'] }, ...BASE.slice(1)]);
      const answers = backends(await ask(pod('a-pod1'), 'tcp', '10.96.0.10', 80, { count: 12 }));
      assert.ok(!answers.includes('a1') && answers.every((b) => BACKENDS.includes(b)), answers.join(', '));

      const flow = ask(pod('a-pod1'), 'udp', '10.96.0.15', 53, { count: 16, intervalMs: 100, sameSocket: true, timeoutMs: 500 });
      await sleep(700);
      await applyAllOk([...BASE.filter((svc) => svc !== FLOW), { ...FLOW, endpoints: ['b-pod0'] }]);
      const flowAnswers = backends(await flow);
      assert.equal(flowAnswers[0], 'a0', flowAnswers.join(', '));
      assert.equal(flowAnswers.at(-1), 'b0', `the flow stayed on the removed backend: ${flowAnswers.join(', ')}`);
      // A flow ends when its endpoint goes (udp-proxy.ts): a reply still on its way from a0 then has
      // no flow to return through, as with any UDP proxy. At most that one datagram, at the switch.
      const lost = flowAnswers.flatMap((b, i) => (b === 'ERROR ETIMEDOUT' ? [i] : []));
      assert.ok(lost.length <= 1 && lost.every((i) => flowAnswers[i - 1] === 'a0' && flowAnswers[i + 1] === 'b0'), flowAnswers.join(', '));
      assert.ok(flowAnswers.every((b) => b === 'a0' || b === 'b0' || b === 'ERROR ETIMEDOUT'), flowAnswers.join(', '));
    }));

  check('re-applying the same map writes nothing; an endpoint change keeps every socket', () =>
    thenBase(async () => {
      const before = await runner('a').stats();
      assert.equal((await applyAll(BASE))['a']?.written, 0);
      const changed = await applyAll([{ ...WEB, endpoints: ['a-pod0', 'b-pod0'] }, ...BASE.slice(1)]);
      const webProxies = before.proxies.filter((p) => p.key.startsWith('default/web:'));
      // Every web proxy got the new list (no restore: the rules did not change).
      assert.equal(changed['a']?.written, webProxies.length);
      assert.deepEqual((await runner('a').stats()).proxies.map((p) => [p.key, p.port]), before.proxies.map((p) => [p.key, p.port]));
    }));

  check('a NodePort conflict fails the second service only; the first keeps its NodePort', () =>
    thenBase(async () => {
      const clash: ServiceSpec = { name: 'clash', clusterIPs: ['10.96.0.17'], ports: [{ ...HTTP, nodePort: 30080 }], endpoints: ['a-pod1'] };
      const web: ServiceSpec = { ...WEB, endpoints: ['a-pod0', 'b-pod0'] };
      // clash sorts first, but web holds the NodePort already.
      const results = await applyAll([clash, web, ...BASE.slice(1)]);
      for (const [name, result] of Object.entries(results)) {
        assert.equal(result.ok, false, `apply on ${name}`);
        // clash is IPv4-only: it wants the NodePort in IPv4 only.
        assert.equal(result.failures?.length, 1, JSON.stringify(result.failures));
        assert.match(result.failures?.[0]?.what ?? '', /NodePort 30080\/TCP \(IPv4\) for default\/clash:http\/TCP/);
        assert.match(result.failures?.[0]?.reason ?? '', /default\/web:http\/TCP already has it/);
      }
      assert.ok(backends(await ask(client(), 'tcp', node('a').underlayIP, 30080, { count: 4 })).every((b) => b === 'a0' || b === 'b0'));
      assert.deepEqual(backends(await ask(pod('a-pod1'), 'tcp', '10.96.0.17', 80)), ['a1'], "the second service's ClusterIP works");
      const clashRules = (await saved(node('a'), 4)).split('\n').filter((l) => l.includes('default/clash'));
      assert.ok(clashRules.length > 0 && clashRules.every((l) => !l.includes('30080')), clashRules.join('\n'));
    }));

  check('deleting a service closes its sockets, removes its rules and clears its UDP conntrack entries', () =>
    thenBase(async () => {
      const a = node('a');
      await ask(pod('a-pod1'), 'udp', '10.96.0.15', 53);
      const entries = async () => (await sandbox.exec(a, 'conntrack', ['-L', '-p', 'udp', '--orig-dst', '10.96.0.15'], { allowFailure: true })).stdout.trim();
      assert.notEqual(await entries(), '', 'the UDP flow left a conntrack entry');
      const before = await runner('a').stats();
      const gone = before.proxies.filter((p) => p.key.startsWith('default/sticky:') || p.key.startsWith('default/flow:')).map((p) => p.port);
      assert.equal(gone.length, 2);
      const listening = await listeningPorts(a);
      assert.ok(gone.every((port) => listening.includes(port)), `${gone} among ${listening}`);

      await applyAllOk(BASE.filter((svc) => svc !== STICKY && svc !== FLOW));
      const after = await runner('a').stats();
      assert.ok(!after.proxies.some((p) => p.key.includes('sticky') || p.key.includes('flow')));
      const stillListening = await listeningPorts(a);
      assert.ok(gone.every((port) => !stillListening.includes(port)), `${gone} among ${stillListening}`);
      const rules = await saved(a, 4);
      assert.ok(!rules.includes('10.96.0.11') && !rules.includes('10.96.0.15'), rules);
      assert.equal(await entries(), '', 'conntrack entries of the removed UDP service');
    }));

  check('a client that does not read stops the backend: the proxy buffers a bounded amount', () =>
    thenBase(async () => {
      const TOTAL = 256 * 1024 * 1024;
      // A backend in b-pod0 that sends TOTAL bytes as fast as the connection takes them and reports
      // its progress; a client in a-pod1 that connects to the service and never reads.
      const flooder = sandbox.spawn(pod('b-pod0'), process.execPath, ['-e', `
        const chunk = Buffer.alloc(65536, 120); let sent = 0;
        require('net').createServer((s) => {
          s.on('error', () => {});
          const pump = () => { while (sent < ${TOTAL}) { sent += chunk.length; if (!s.write(chunk)) { s.once('drain', pump); return; } } s.end(); };
          pump();
        }).listen(9000);
        setInterval(() => process.stdout.write('sent ' + sent + '\\n'), 100);`]);
      let sent = 0;
      flooder.stdout?.on('data', (d: Buffer) => {
        const last = /sent (\d+)\n$/.exec(String(d));
        if (last !== null) sent = Number(last[1]);
      });
      const flood: ServiceSpec = { name: 'flood', clusterIPs: ['10.96.0.18'], ports: [HTTP], endpoints: ['b-pod0'], targetPort: 9000 };
      await applyAllOk([...BASE, flood]);
      const pid = runner('a').child.pid;
      const rss = async (): Promise<number> => Number(/^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1]) * 1024;
      const rssBefore = await rss();
      const reader = sandbox.spawn(pod('a-pod1'), process.execPath, ['-e', "require('net').connect(80, '10.96.0.18').pause(); setInterval(() => {}, 1e9);"]);
      try {
        await until('the backend to stall', async () => {
          const before = sent;
          await sleep(500);
          return sent > 0 && sent === before;
        }, 20_000);
        const proxy = (await runner('a').stats()).proxies.find((p) => p.key === 'default/flood:http/TCP internal IPv4');
        assert.equal(proxy?.connections, 1);
        assert.ok((proxy?.bufferedBytes ?? Infinity) < 1024 * 1024, `the proxy holds ${proxy?.bufferedBytes} bytes`);
        assert.ok(sent < TOTAL / 4, `the backend got ${sent} of ${TOTAL} bytes out`);
        assert.ok((await rss()) - rssBefore < 64 * 1024 * 1024, `the proxy grew from ${rssBefore} to ${await rss()} bytes`);
      } finally {
        await sandbox.stop(reader);
        await sandbox.stop(flooder);
      }
    }));

  check('the open-file limit is raised on start, as far as the hard limit allows', async () => {
    const pid = runner('a').child.pid;
    const limits = (await readFile(`/proc/${pid}/limits`, 'utf8')).split('\n').find((l) => l.startsWith('Max open files'));
    const [soft, hard] = (limits ?? '').split(/\s{2,}/).slice(1, 3).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
    assert.ok(soft !== undefined && hard !== undefined && soft > 1024, limits);
    assert.ok(soft >= 64_000 || soft === hard, limits);
  });

  check("a new proxy's first apply replaces what a crashed one left", async () => {
    const b = node('b');
    const crashed = runner('b');
    crashed.child.kill('SIGKILL');
    await crashed.child;
    assert.match(await saved(b, 4), /WLPROXY-PORTALS-CONTAINER[\s\S]*10\.96\.0\.11/, 'the crash left its rules');
    const fresh = await ProxyRunner.start(sandbox, b, join(workDir, 'b-again'), RANGE_B);
    runners.set('b', fresh);
    const result = await fresh.send({ command: 'apply', map: mapFor(b, BASE.filter((s) => s !== STICKY)) });
    assert.ok(result.ok, result.error);
    const rules = await saved(b, 4);
    assert.ok(!rules.includes('10.96.0.11'), 'stale portal of the crashed run');
    assert.equal(rules.match(/-j WLPROXY-PORTALS-CONTAINER/g)?.length, 1, 'one jump, not two');
    assert.deepEqual(backends(await ask(pod('b-pod0'), 'tcp', '10.96.0.10', 80, { count: 3 })).filter((x) => !BACKENDS.includes(x)), []);
  });

  check('clean-up leaves no chain, jump or listening socket, in either family', async () => {
    for (const [name, r] of runners) {
      const result = await r.send({ command: 'cleanup' });
      assert.ok(result.ok, `cleanup on ${name}: ${result.error}`);
      for (const family of [4, 6] as const) assert.doesNotMatch(await saved(node(name), family), /WLPROXY-|wirelane-proxy:/, `IPv${family} on ${name}`);
      assert.deepEqual(await listeningPorts(node(name)), [], `listening sockets on ${name}`);
    }
    for (const r of runners.values()) {
      await sandbox.stop(r.child);
      assert.equal(r.child.exitCode, 0);
    }
  });
});
