// The services conformance suite: the same behaviours, checked with real traffic, for every service
// proxy mode. Three nodes (a, b in east; c in west) run real agents with the mesh and the proxy;
// Services and EndpointSlices come from the test API server; backends are echo servers in pods that
// answer with their name and the source address they saw; a client host sits outside the cluster
// and is also a Peer (`wirelane connect`). The locations are really apart: between east and west
// only WireGuard crosses (test/support/apart-locations.ts), so what is served from the other
// location goes over the mesh, as between two sites.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SERVICE_PROXY_MODES } from '../../src/agent/service-proxy-modes.js';
import { runCommand } from '../../src/host/command.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import { WIREGUARD_PORT, cliPath } from '../../src/sandbox/mesh-cluster.js';
import type { KubeApiServer } from '../kube-apiserver/index.js';
import { type TestMeshCluster, createMeshCluster } from '../harness/mesh-cluster.js';
import { framesKeptApart, separateLocations } from '../support/apart-locations.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('services conformance suite', [...AGENT_TOOLS, ['conntrack', ['--version']], ['bpftool', ['version']]]);

// Every mode of the agent's table, with the fast path on (pod-to-pod replies of flows netfilter
// translated must stay on the stack), and the modes that fall back to netfilter with it off too; the
// userspace proxy terminates connections, so there backends see the node, never the client.
const MODES = SERVICE_PROXY_MODES.flatMap((row) =>
  (row.mode === 'ebpf' ? (['on'] as const) : (['on', 'off'] as const)).map((fastPath) => ({ mode: row.mode, fastPath, preservesSourceIP: row.preservesClientAddress })),
);

const EXTERNAL_IP = '192.0.2.10';
const LOAD_BALANCER_IP = '192.0.2.20';
const CLIENT_IP = '172.31.1.1';
// The client as a Peer: its WireGuard address, and the service range the agents and it route.
const PEER_IP = '10.5.0.1';
const SERVICE_CIDR = '10.96.0.0/12';
// Served only from c (west): from east, and from the Peer (which sends the service range to east),
// it is reached over WireGuard, whichever of a and b leads east.
const REMOTE_IP = '10.96.0.16';
const REMOTE_NODE_PORTS = { tcp: 30090, udp: 30091 } as const;
// Long enough that a gap between the sticky requests never reaches it on a loaded machine.
const AFFINITY_SECONDS = 5;

type Endpoint = { pod: string; ready?: boolean; serving?: boolean; terminating?: boolean };
type ServicePortSpec = { name: string; protocol: string; port: number; targetPort: number; nodePort?: number };

function service(name: string, spec: Record<string, unknown>, status: Record<string, unknown> = {}) {
  return { metadata: { name, namespace: 'default' }, spec: { type: 'ClusterIP', ...spec }, status };
}

const httpPort = { name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 };
const dnsPort = { name: 'dns', protocol: 'UDP', port: 53, targetPort: 8080 };

describe('services conformance', { skip }, () => {
  for (const { mode, fastPath, preservesSourceIP } of MODES) {
    describe(`${mode} mode, fast path ${fastPath}`, () => {
      let started: TestMeshCluster;
      let cluster: MeshCluster;
      let api: KubeApiServer;
      let anyFailed = false;

      /** Pod by sandbox name, e.g. 'a-pod1'. */
      const pod = (name: string) => {
        const found = cluster.sandbox.pods.find((p) => p.name === name);
        if (!found) throw new Error(`no pod ${name}`);
        return found;
      };
      const client = () => cluster.sandbox.outside[0]!;

      function slice(name: string, ports: readonly ServicePortSpec[], endpoints: Endpoint[]) {
        return {
          metadata: { name: `${name}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
          addressType: 'IPv4',
          ports: ports.map((p) => ({ name: p.name, protocol: p.protocol, port: 8080 })),
          endpoints: endpoints.map((e) => ({
            addresses: [pod(e.pod).ip],
            nodeName: pod(e.pod).node,
            conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
          })),
        };
      }

      function setService(name: string, spec: Record<string, unknown>, endpoints: Endpoint[], status: Record<string, unknown> = {}) {
        const ports = spec['ports'] as ServicePortSpec[];
        const svc = service(name, spec, status);
        if (api.get('services', name, 'default')) api.update('services', svc);
        else api.create('services', svc);
        const s = slice(name, ports, endpoints);
        if (api.get('endpointslices', s.metadata.name, 'default')) api.update('endpointslices', s);
        else api.create('endpointslices', s);
      }

      /** Backend names of the answers; errors as `ERROR <code>`. */
      const backends = (lines: string[]) => lines.map((l) => l.split(' ')[0] === 'ERROR' ? l : (l.split(' ')[0] as string));

      /** Waits until requests get answers again after a change (agents apply on the next event). */
      async function settle(check: () => Promise<boolean>, what: string) {
        await until(what, check, 20_000, 250);
      }

      before(async () => {
        started = await createMeshCluster({
          nodes: [
            { name: 'a', location: 'east', pods: 2 },
            { name: 'b', location: 'east' },
            { name: 'c', location: 'west' },
          ],
          source: 'kubernetes',
          outside: [{ name: 'client', underlayAddress: `${CLIENT_IP}/16` }],
          agentArgs: ['--resync-period', '5s', '--service-proxy', mode, '--service-cidr', SERVICE_CIDR, '--fast-path', fastPath],
        });
        cluster = started.cluster;
        api = started.api!;
        await separateLocations(cluster.sandbox, WIREGUARD_PORT);
        for (const p of ['a-pod0', 'a-pod1', 'b-pod0', 'c-pod0']) {
          startEchoServer(cluster.sandbox, pod(p), p.replace('-pod', ''), { tcp: 8080, udp: 8080 });
        }
        // The outside client reaches external and load-balancer IPs through node a, as a router would send them.
        await cluster.sandbox.exec(client(), 'ip', ['route', 'add', '192.0.2.0/24', 'via', cluster.sandbox.node('a').underlayIP]);
        const three = [{ pod: 'a-pod0' }, { pod: 'b-pod0' }, { pod: 'c-pod0' }];
        setService(
          'web',
          {
            type: 'LoadBalancer',
            clusterIP: '10.96.0.10',
            clusterIPs: ['10.96.0.10'],
            ports: [{ ...httpPort, nodePort: 30080 }, { ...dnsPort, nodePort: 30053 }],
            externalIPs: [EXTERNAL_IP],
          },
          three,
          { loadBalancer: { ingress: [{ ip: LOAD_BALANCER_IP }] } },
        );
        setService('sticky', { clusterIP: '10.96.0.11', ports: [httpPort], sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: AFFINITY_SECONDS } } }, three);
        setService('local', { type: 'NodePort', clusterIP: '10.96.0.12', ports: [{ ...httpPort, nodePort: 30081 }], externalTrafficPolicy: 'Local' }, [{ pod: 'a-pod1' }]);
        setService('empty', { clusterIP: '10.96.0.13', ports: [httpPort, dnsPort] }, []);
        setService('term', { clusterIP: '10.96.0.14', ports: [httpPort] }, [{ pod: 'b-pod0' }, { pod: 'c-pod0', ready: false, serving: true, terminating: true }]);
        setService('flow', { clusterIP: '10.96.0.15', ports: [dnsPort] }, [{ pod: 'b-pod0' }]);
        setService('remote', { type: 'NodePort', clusterIP: REMOTE_IP, ports: [{ ...httpPort, nodePort: REMOTE_NODE_PORTS.tcp }, { ...dnsPort, nodePort: REMOTE_NODE_PORTS.udp }] }, [{ pod: 'c-pod0' }]);
        for (const n of ['a', 'b', 'c']) cluster.startAgent(n);
        await cluster.waitReady();
        await settle(async () => backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.10', 80))[0]?.startsWith('ERROR') === false, 'the first service to answer');
        // The client joins as a Peer; its requests to the service range go over WireGuard to east's leader.
        const stateDir = cluster.stateDir('peer-client');
        mkdirSync(stateDir, { recursive: true, mode: 0o700 });
        const connectLog = join(stateDir, 'connect.log');
        cluster.sandbox.spawn(client(), process.execPath, [
          cliPath(), 'connect', 'client', '--kubeconfig', cluster.kubeconfig, '--allowed-ip', `${PEER_IP}/32`, '--interface', `${cluster.sandbox.prefix}pc`,
          '--state-dir', stateDir, '--resync-period', '5s', '--service-cidr', SERVICE_CIDR,
        ], { stdout: { file: connectLog }, stderr: { file: connectLog } });
        // Until a location's leader has the Peer, connect's routes send even the client's NodePort
        // requests to that location into a tunnel nobody answers yet: the set-up is done when the Peer
        // reaches a pod in each location (the leaders apply it in their own reconciles, in no order).
        for (const [location, target] of [['east', 'a-pod0'], ['west', 'c-pod0']] as const) {
          if (!(await cluster.waitPing(client(), pod(target).ip, 60_000))) {
            assert.fail(`the Peer does not reach a pod in ${location}\n--- connect\n${await readFile(connectLog, 'utf8').catch(() => '')}`);
          }
        }
      });

      after(async () => {
        await started?.destroy(anyFailed);
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

      check('ClusterIP over TCP and UDP from a pod on the same node, a pod on another node and the host', async () => {
        for (const from of [pod('a-pod1'), pod('c-pod0'), cluster.sandbox.node('a')]) {
          for (const [protocol, port] of [['tcp', 80], ['udp', 53]] as const) {
            // 3 s: the userspace proxy relays UDP on a loaded event loop (1 s timed out once in CI).
            const answers = backends(await echoRequests(cluster.sandbox, from, protocol, '10.96.0.10', port, { count: 3, timeoutMs: 3000 }));
            assert.ok(answers.every((a) => ['a0', 'b0', 'c0'].includes(a)), `${protocol} from ${from.netns}: ${answers.join(', ')}`);
          }
        }
      });

      check('NodePort, ExternalIP and LoadBalancer IP from outside the cluster', async () => {
        const targets: [string, 'tcp' | 'udp', number][] = [
          [cluster.sandbox.node('b').underlayIP, 'tcp', 30080],
          [cluster.sandbox.node('b').underlayIP, 'udp', 30053],
          [EXTERNAL_IP, 'tcp', 80],
          [LOAD_BALANCER_IP, 'tcp', 80],
        ];
        for (const [host, protocol, port] of targets) {
          // The first packet to a new neighbour may be lost while it resolves: allow one retransmission.
          const answers = backends(await echoRequests(cluster.sandbox, client(), protocol, host, port, { count: 3, timeoutMs: 3000 }));
          assert.ok(answers.every((a) => ['a0', 'b0', 'c0'].includes(a)), `${protocol} ${host}:${port}: ${answers.join(', ')}`);
        }
      });

      check('the locations are apart: only WireGuard crosses between east and west', async () => {
        assert.ok(!(await cluster.ping(cluster.sandbox.node('a'), cluster.sandbox.node('c').underlayIP)), 'a does not reach c over the underlay');
        assert.ok(await cluster.ping(cluster.sandbox.node('a'), cluster.sandbox.node('b').underlayIP), 'a reaches b, in its own location');
        assert.ok((await framesKeptApart(cluster.sandbox)) > 0, 'the separation dropped frames');
      });

      check('ClusterIP over TCP and UDP from a pod, the leader and a non-leader of the other location', async () => {
        for (const from of [pod('a-pod1'), pod('b-pod0'), cluster.sandbox.node('a'), cluster.sandbox.node('b')]) {
          for (const [protocol, port] of [['tcp', 80], ['udp', 53]] as const) {
            const answers = backends(await echoRequests(cluster.sandbox, from, protocol, REMOTE_IP, port, { count: 3, timeoutMs: 3000 }));
            assert.deepEqual(answers, ['c0', 'c0', 'c0'], `${protocol} from ${from.netns}`);
          }
        }
      });

      check('ClusterIP over TCP and UDP from a Peer, served from another location', async () => {
        for (const [protocol, port] of [['tcp', 80], ['udp', 53]] as const) {
          const answers = await echoRequests(cluster.sandbox, client(), protocol, REMOTE_IP, port, { count: 3, timeoutMs: 3000 });
          assert.deepEqual(backends(answers), ['c0', 'c0', 'c0'], `${protocol}: ${answers.join(', ')}`);
        }
      });

      check('NodePort over TCP and UDP from outside on either node of one location, served from the other', async () => {
        for (const n of ['a', 'b']) {
          for (const protocol of ['tcp', 'udp'] as const) {
            const answers = await echoRequests(cluster.sandbox, client(), protocol, cluster.sandbox.node(n).underlayIP, REMOTE_NODE_PORTS[protocol], { count: 3, timeoutMs: 3000 });
            assert.deepEqual(backends(answers), ['c0', 'c0', 'c0'], `${protocol} to ${n}: ${answers.join(', ')}`);
          }
        }
      });

      check('requests spread over every endpoint', async () => {
        const seen = new Set(backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.10', 80, { count: 60 })));
        assert.deepEqual([...seen].sort(), ['a0', 'b0', 'c0']);
      });

      check('ClientIP affinity sticks within its timeout and expires after it', async () => {
        const first = backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.11', 80, { count: 15 }));
        assert.equal(new Set(first).size, 1, `sticky: ${first.join(', ')}`);
        // After the timeout the next choice is random again: within a few rounds another backend answers.
        let moved = false;
        for (let round = 0; round < 8 && !moved; round++) {
          await new Promise((resolve) => setTimeout(resolve, (AFFINITY_SECONDS + 1) * 1000));
          const next = backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.11', 80));
          moved = next[0] !== first[0];
        }
        assert.ok(moved, 'affinity never expired');
      });

      check(`externalTrafficPolicy Local ${preservesSourceIP ? 'keeps the client source IP' : 'serves from the local endpoint'} and drops on a node without one`, async () => {
        const [answer] = await echoRequests(cluster.sandbox, client(), 'tcp', cluster.sandbox.node('a').underlayIP, 30081, { timeoutMs: 3000 });
        const [backend, seen] = (answer ?? '').split(' ');
        assert.equal(backend, 'a1');
        if (preservesSourceIP) assert.equal(seen?.split(':')[0], CLIENT_IP);
        const dropped = await echoRequests(cluster.sandbox, client(), 'tcp', cluster.sandbox.node('b').underlayIP, 30081, { timeoutMs: 1500 });
        assert.deepEqual(dropped, ['ERROR ETIMEDOUT'], 'dropped, not refused');
      });

      check('a service without endpoints refuses at once, TCP and UDP', async () => {
        for (const [protocol, port] of [['tcp', 80], ['udp', 53]] as const) {
          // A refusal, not a timeout: the client reports which one ended the request.
          const answers = await echoRequests(cluster.sandbox, pod('a-pod1'), protocol, '10.96.0.13', port, { timeoutMs: 3000 });
          assert.deepEqual(answers, ['ERROR ECONNREFUSED'], protocol);
        }
      });

      check('terminating endpoints serve only when nothing is ready', async () => {
        assert.deepEqual([...new Set(backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.14', 80, { count: 20 })))], ['b0']);
        setService('term', { clusterIP: '10.96.0.14', ports: [httpPort] }, [{ pod: 'c-pod0', ready: false, serving: true, terminating: true }]);
        await settle(async () => backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.14', 80))[0] === 'c0', 'the terminating endpoint to take over');
        assert.deepEqual([...new Set(backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.14', 80, { count: 10 })))], ['c0']);
      });

      check('a removed endpoint gets no new connections, and a UDP flow moves to another backend', async () => {
        // The flow starts on b0, the only endpoint; it is replaced by c0 while the flow runs.
        const flow = echoRequests(cluster.sandbox, pod('a-pod1'), 'udp', '10.96.0.15', 53, { count: 24, intervalMs: 250, sameSocket: true, timeoutMs: 400 });
        await new Promise((resolve) => setTimeout(resolve, 1500));
        setService('flow', { clusterIP: '10.96.0.15', ports: [dnsPort] }, [{ pod: 'c-pod0' }]);
        const answers = backends(await flow);
        assert.equal(answers[0], 'b0');
        assert.equal(answers.at(-1), 'c0', `the flow stayed on the removed backend: ${answers.join(', ')}`);

        setService('web', { type: 'LoadBalancer', clusterIP: '10.96.0.10', ports: [{ ...httpPort, nodePort: 30080 }, { ...dnsPort, nodePort: 30053 }], externalIPs: [EXTERNAL_IP] },
          [{ pod: 'a-pod0' }, { pod: 'b-pod0' }], { loadBalancer: { ingress: [{ ip: LOAD_BALANCER_IP }] } });
        await settle(async () => {
          const seen = backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.10', 80, { count: 20 }));
          return !seen.includes('c0');
        }, 'c0 to leave the web service');
        const seen = backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.10', 80, { count: 40 }));
        assert.ok(!seen.includes('c0'), seen.join(', '));
      });

      if (mode === 'ebpf') {
        check('no per-service iptables rules: services live in BPF maps', async () => {
          for (const n of ['a', 'b', 'c']) {
            for (const tool of ['iptables-save', 'ip6tables-save']) {
              const rules = (await cluster.sandbox.exec(cluster.sandbox.node(n), tool, [])).stdout;
              assert.doesNotMatch(rules, /WLSVC-|WLPROXY-|10\.96\.0\.|192\.0\.2\.|3008[01]|30053/, `${tool} on ${n}`);
            }
          }
        });
      }

      /** The addresses of the service entries in node n's wl_services (eBPF mode). */
      async function bpfServiceAddresses(n: string): Promise<Set<string>> {
        const dump = await runCommand('bpftool', ['-j', 'map', 'dump', 'pinned', join(cluster.bpffs, n, 'wl_services')]);
        const entries = JSON.parse(dump.stdout) as Array<{ key: string[] }>;
        return new Set(entries.map((e) => e.key.slice(0, 4).map((b) => Number.parseInt(b, 16)).join('.')));
      }

      /** Listening TCP sockets per node: the userspace proxy holds one per TCP service port. */
      const listeningTcp = async () =>
        Promise.all(['a', 'b', 'c'].map(async (n) => (await cluster.sandbox.exec(cluster.sandbox.node(n), 'ss', ['-Hltn'])).stdout.trim().split('\n').filter((l) => l !== '').length));

      check('deleting a service removes its rules and sockets', async () => {
        assert.ok(mode !== 'ebpf' || (await bpfServiceAddresses('a')).has('10.96.0.11'), 'the map dump finds the service before');
        const socketsBefore = await listeningTcp();
        api.delete('services', 'sticky', 'default');
        api.delete('endpointslices', 'sticky-1', 'default');
        await settle(async () => backends(await echoRequests(cluster.sandbox, pod('a-pod1'), 'tcp', '10.96.0.11', 80, { timeoutMs: 1000 }))[0]?.startsWith('ERROR') === true, 'requests to 10.96.0.11 to fail');
        for (const n of ['a', 'b', 'c']) {
          if (mode === 'ebpf') {
            await settle(async () => !(await bpfServiceAddresses(n)).has('10.96.0.11'), `node ${n} to drop the map entries of 10.96.0.11`);
          } else {
            await settle(async () => !(await cluster.sandbox.exec(cluster.sandbox.node(n), 'iptables-save', [])).stdout.includes('10.96.0.11'), `node ${n} to drop the rules for 10.96.0.11`);
          }
        }
        // The service had one TCP port: the userspace proxy closes its socket, the others open none.
        const closed = mode === 'userspace' ? 1 : 0;
        assert.deepEqual(await listeningTcp(), socketsBefore.map((n) => n - closed), 'listening TCP sockets on a, b, c');
      });

      check(`the fast path ${fastPath === 'on' ? 'forwarded pod traffic and left flows netfilter translates to the stack' : 'stayed off'}`, async () => {
        // A scrape that failed on a loaded machine is tried again: it must hold the agent's sync counter.
        const scrape = async (n: string) => {
          let metrics = new Map<string, number>();
          await until(`metrics of ${n}`, async () => (metrics = await cluster.metrics(n)).has('wirelane_syncs_total{loop="mesh",result="success"}'), 30_000, 200);
          return metrics;
        };
        const total = async (name: string) => {
          let sum = 0;
          for (const n of ['a', 'b', 'c']) for (const [key, value] of await scrape(n)) if (key.startsWith(name)) sum += value;
          return sum;
        };
        const forwarded = await total('wirelane_fast_path_packets_total{');
        if (fastPath === 'off') {
          assert.equal(forwarded, 0, 'no packet forwarded with --fast-path off');
          return;
        }
        assert.ok(forwarded > 0, 'pod packets forwarded by the fast path');
        // A same-node backend's reply to a-pod1 is pod to pod, but only conntrack can un-DNAT it.
        if (mode === 'iptables') assert.ok((await total('wirelane_fast_path_passed_total{reason="conntrack_nat"}')) > 0, 'replies of DNATed flows left to the stack');
      });

      check('--clean-up leaves no rule, chain or socket of the proxy', async () => {
        for (const n of ['a', 'b', 'c']) assert.equal(await cluster.stopAgent(n), 0);
        for (const n of ['a', 'b', 'c']) {
          const node = cluster.sandbox.node(n);
          for (const tool of ['iptables-save', 'ip6tables-save']) {
            const rules = (await cluster.sandbox.exec(node, tool, [])).stdout;
            assert.doesNotMatch(rules, /WLSVC-|WLPROXY-|WIRELANE-|10\.96\.0\./, `${tool} on ${n}`);
          }
          const sockets = (await cluster.sandbox.exec(node, 'ss', ['-Hltun'])).stdout.trim();
          assert.equal(sockets, '', `listening sockets on ${n}`);
          assert.ok(!existsSync(join(cluster.bpffs, n, 'fast-path')), `fast-path pins of ${n} are gone`);
          if (mode === 'ebpf') {
            assert.ok(!existsSync(join(cluster.bpffs, n)), `pins of ${n} are gone`);
            const programs = (await runCommand('bpftool', ['-j', 'cgroup', 'show', join(cluster.sandbox.cgroups!.root, n)])).stdout;
            assert.deepEqual(JSON.parse(programs || '[]'), [], `programs on the cgroup of ${n}`);
            const [net] = JSON.parse((await cluster.sandbox.exec(node, 'bpftool', ['-j', 'net', 'show'])).stdout) as Array<{ xdp: unknown[]; tc: unknown[] }>;
            assert.deepEqual([net?.xdp, net?.tc], [[], []], `tc and XDP programs on the interfaces of ${n}`);
          }
        }
      });
    });
  }
});
