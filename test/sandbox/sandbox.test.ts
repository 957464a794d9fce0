import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { formatCidr } from '../../src/model/ip.js';
import { listAddresses } from '../../src/host/addresses.js';
import { listLinks } from '../../src/host/links.js';
import { listNetns } from '../../src/host/netns.js';
import { listRoutes } from '../../src/host/routes.js';
import { readSysctl } from '../../src/host/sysctl.js';
import {
  createSandbox,
  managementSubnetOf,
  sweepLeftoverSandboxes,
  SANDBOX_PREFIX_PATTERN,
  withSandbox,
  type Sandbox,
  type SandboxSpec,
} from '../../src/sandbox/index.js';
import { startTimeOf } from '../../src/sandbox/registry.js';
import { capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('sandbox tests');

const TWO_LOCATIONS: SandboxSpec = {
  management: true,
  nodes: [
    { name: 'a1', location: 'a', underlayAddress: '172.31.0.11/16', podCIDRs: ['10.244.1.0/24'], pods: 1 },
    { name: 'a2', location: 'a', underlayAddress: '172.31.0.12/16', podCIDRs: ['10.244.2.0/24'], pods: 1 },
    { name: 'b1', location: 'b', underlayAddress: '172.31.0.21/16', podCIDRs: ['10.244.3.0/24'], pods: 1 },
    { name: 'b2', location: 'b', underlayAddress: '172.31.0.22/16', podCIDRs: ['10.244.4.0/24'], pods: 1 },
  ],
};

/** Root-namespace names that belong to nobody else's sandbox (other test files run concurrently). */
async function rootNames(): Promise<{ namespaces: string[]; links: string[] }> {
  const mine = (name: string): boolean => !SANDBOX_PREFIX_PATTERN.test(name);
  const [namespaces, links] = await Promise.all([listNetns(), listLinks()]);
  return { namespaces: namespaces.filter(mine).sort(), links: links.map((l) => l.name).filter(mine).sort() };
}

async function namesWithPrefix(prefix: string): Promise<string[]> {
  const [namespaces, links] = await Promise.all([listNetns(), listLinks()]);
  return [...namespaces, ...links.map((l) => l.name)].filter((n) => n.startsWith(prefix));
}

/** Whether the process still runs; waits a little, since a killed orphan is reaped by init. */
async function isAlive(pid: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if (startTimeOf(pid) === undefined) return false;
    await sleep(20);
  }
  return true;
}

/** Runs `body` against a fresh two-location sandbox, destroyed afterwards whatever happens. */
function scenario(name: string, body: (sb: Sandbox) => Promise<void>): void {
  test(name, () => withSandbox(TWO_LOCATIONS, body));
}

describe('sandbox', { skip }, () => {
  scenario('every pod reaches its own node through the pod gateway', async (sb) => {
    for (const node of sb.nodes) {
      const [pod] = node.pods;
      assert.ok(pod);
      assert.equal(await sb.probe(pod, node.podGateways[0]!), 'refused', `${pod.name} -> ${node.name} gateway`);
      assert.equal(await sb.probe(pod, node.underlayIP), 'refused', `${pod.name} -> ${node.name} underlay`);
      assert.equal(await sb.probe(node, pod.ip), 'refused', `${node.name} -> ${pod.name}`);
    }
  });

  scenario('nodes reach each other over the underlay, across locations', async (sb) => {
    const [a1, a2, b1, b2] = sb.nodes;
    assert.ok(a1 && a2 && b1 && b2);
    for (const [from, to] of [[a1, a2], [a1, b1], [b2, a1], [b1, b2]] as const) {
      assert.equal(await sb.probe(from, to.underlayIP), 'refused', `${from.name} -> ${to.name}`);
    }
  });

  scenario('nodes forward packets: a pod reaches a pod on another node once routes point there', async (sb) => {
    const a1 = sb.node('a1');
    const b1 = sb.node('b1');
    const from = a1.pods[0]!;
    const to = b1.pods[0]!;
    assert.equal(await readSysctl('net.ipv4.ip_forward', { netns: a1.netns }), '1');
    assert.equal(await sb.reaches(from, to.ip, undefined, 500), false, 'no route yet');

    await sb.exec(a1, 'ip', ['route', 'add', b1.podCIDRs[0]!, 'via', b1.underlayIP]);
    await sb.exec(b1, 'ip', ['route', 'add', a1.podCIDRs[0]!, 'via', a1.underlayIP]);
    assert.equal(await sb.probe(from, to.ip), 'refused');
    assert.equal(await sb.probe(to, from.ip), 'refused');
  });

  test('dual stack: IPv6 underlay and pod addresses work, outside hosts reach nodes but do not forward', async () => {
    const spec: SandboxSpec = {
      nodes: [
        { name: 'x', underlayAddress: '172.31.0.1/16', underlayAddress6: 'fd31::1/64', podCIDRs: ['10.244.1.0/24', 'fd44:1::/64'], pods: 1 },
        { name: 'y', underlayAddress: '172.31.0.2/16', underlayAddress6: 'fd31::2/64', podCIDRs: ['10.244.2.0/24', 'fd44:2::/64'], pods: 1 },
      ],
      outside: [{ name: 'client', underlayAddress: '172.31.9.9/16', underlayAddress6: 'fd31::99/64' }],
    };
    await withSandbox(spec, async (sb) => {
      const [x, y] = sb.nodes;
      const [client] = sb.outside;
      assert.ok(x && y && client);
      const pod = x.pods[0]!;
      assert.equal(pod.ipv6, 'fd44:1::2');
      assert.equal(await sb.probe(pod, x.podGateways[1]!), 'refused', 'pod -> node over IPv6');
      assert.equal(await sb.probe(x, pod.ipv6), 'refused', 'node -> pod over IPv6');
      assert.equal(await sb.probe(x, y.underlayIPv6!), 'refused', 'node -> node over the IPv6 underlay');
      assert.equal(await sb.probe(client, x.underlayIP), 'refused', 'outside host -> node');
      assert.equal(await sb.probe(client, y.underlayIPv6!), 'refused', 'outside host -> node over IPv6');
      assert.equal(await readSysctl('net.ipv6.conf.all.forwarding', { netns: x.netns }), '1');
      assert.equal(await readSysctl('net.ipv4.ip_forward', { netns: client.netns }), '0');
    });
  });

  test('pods are made by the CNI plugins: a bridge with the gateway, the mesh MTU, forwarding off, host-local state of its own', async () => {
    const spec: SandboxSpec = { nodes: [{ name: 'x', underlayAddress: '172.31.0.1/16', podCIDRs: ['10.244.1.0/24', 'fd44:1::/64'], pods: 2 }], podNetwork: 'cni' };
    let stateDir = '';
    await withSandbox(spec, async (sb) => {
      const x = sb.node('x');
      stateDir = sb.cniNetworkOf('x').ipamDir;
      assert.ok(stateDir.startsWith(`/run/wirelane/${sb.prefix}`), `${stateDir} belongs to the sandbox`);
      // host-local keeps one file per address it handed out, named by the address.
      const allocated = readdirSync(join(stateDir, 'wirelane')).filter((f) => /^[0-9a-f.:]+$/.test(f)).sort();
      assert.deepEqual(allocated, [...x.pods.map((p) => p.ip), ...x.pods.map((p) => p.ipv6!)].sort(), 'the view shows what host-local handed out');
      const bridge = await listAddresses({ netns: x.netns, ifname: 'wirelane-br' });
      assert.deepEqual(bridge.filter((a) => a.scope === 'global').map((a) => a.cidr).sort(), ['10.244.1.1/24', 'fd44:1::1/64']);
      for (const pod of x.pods) {
        const [link] = JSON.parse((await sb.exec(pod, 'ip', ['-j', 'link', 'show', pod.iface])).stdout) as { mtu: number }[];
        assert.equal(link?.mtu, 1420);
        assert.equal(await readSysctl('net.ipv4.ip_forward', { netns: pod.netns }), '0');
        assert.equal(await readSysctl('net.ipv6.conf.all.forwarding', { netns: pod.netns }), '0');
        assert.ok((await listLinks({ netns: x.netns })).some((l) => l.name === pod.nodeIface), `${pod.nodeIface} is in the node`);
      }
      const [a, b] = x.pods;
      assert.equal(await sb.probe(a!, b!.ip), 'refused', 'pod → pod across the bridge');
      assert.equal(await sb.probe(a!, b!.ipv6!), 'refused', 'pod → pod across the bridge over IPv6');
    });
    assert.equal(existsSync(stateDir), false, "host-local's state went with the sandbox");
  });

  test('a process in a node namespace reaches a server on the management address', async () => {
    await withSandbox(TWO_LOCATIONS, async (sb) => {
      assert.ok(sb.managementAddress);
      const seen: string[] = [];
      const server: Server = createServer((req, res) => {
        seen.push(req.socket.remoteAddress ?? '');
        res.end('hello from the root namespace');
      });
      server.listen(0, sb.managementAddress);
      await once(server, 'listening');
      try {
        const { port } = server.address() as AddressInfo;
        const script = `require('node:http').get(process.argv[1], (res) => res.pipe(process.stdout))`;
        const child = sb.spawn(sb.node('b2'), process.execPath, ['-e', script, `http://${sb.managementAddress}:${port}/`]);
        const result = await child;
        assert.equal(result.exitCode, 0, result.stderr);
        assert.equal(result.stdout, 'hello from the root namespace');
        // Masqueraded by the underlay namespace: the root never sees (or routes) node addresses.
        assert.equal(seen.length, 1);
        assert.notEqual(seen[0], sb.node('b2').underlayIP);
      } finally {
        server.close();
      }
    });
  });

  test('the root namespace gains only the management link and its /30', async () => {
    const before = await listRoutes({ table: 'main' });
    await withSandbox(TWO_LOCATIONS, async (sb) => {
      const during = await listRoutes({ table: 'main' });
      const added = during.filter((r) => !before.some((b) => b.dst === r.dst && b.dev === r.dev));
      const ours = added.filter((r) => r.dev === sb.managementLink);
      assert.deepEqual(
        ours.map((r) => r.dst),
        [formatCidr(managementSubnetOf(sb.prefix))],
      );
      const ourLinks = (await listLinks()).filter((l) => l.name.startsWith(sb.prefix));
      assert.deepEqual(ourLinks.map((l) => l.name), [sb.managementLink]);
      assert.ok(sb.managementLink!.length <= 15, 'fits IFNAMSIZ');
    });
  });

  test('destroy removes every namespace and root link it made, and is idempotent', async () => {
    const before = await rootNames();
    const sb = await createSandbox(TWO_LOCATIONS);
    try {
      assert.equal(sb.namespaces.length, 1 + 4 + 4);
      const present = await listNetns();
      for (const ns of sb.namespaces) assert.ok(present.includes(ns), `${ns} exists`);
    } finally {
      await sb.destroy();
    }
    await sb.destroy();
    assert.deepEqual(await namesWithPrefix(sb.prefix), []);
    assert.deepEqual(await rootNames(), before);
  });

  test('destroy runs when the test body throws', async () => {
    let prefix = '';
    await assert.rejects(
      withSandbox(TWO_LOCATIONS, async (sb) => {
        prefix = sb.prefix;
        throw new Error('body failed');
      }),
      /body failed/,
    );
    assert.match(prefix, SANDBOX_PREFIX_PATTERN);
    assert.deepEqual(await namesWithPrefix(prefix), []);
  });

  test('destroy stops spawned processes, escalating to SIGKILL when SIGTERM is ignored', async () => {
    const sb = await createSandbox(TWO_LOCATIONS, { graceMs: 300 });
    let polite = 0;
    let stubborn = 0;
    try {
      polite = sb.spawn(sb.node('a1'), 'sleep', ['600']).pid;
      const ignoreTerm = `process.on('SIGTERM', () => {}); process.stdout.write('ready'); setInterval(() => {}, 1000)`;
      const child = sb.spawn(sb.pods[0]!, process.execPath, ['-e', ignoreTerm]);
      stubborn = child.pid;
      assert.ok(child.stdout);
      await once(child.stdout, 'data');
      assert.ok(startTimeOf(polite) !== undefined && startTimeOf(stubborn) !== undefined);
    } finally {
      await sb.destroy();
    }
    assert.equal(await isAlive(polite), false, 'sleep stopped');
    assert.equal(await isAlive(stubborn), false, 'SIGTERM-ignoring process killed');
  });

  test('a failed build names the failing command and removes what it had made', async () => {
    const before = await rootNames();
    // Planning accepts any IPv6 CIDR; the kernel refuses a multicast interface address.
    const error: unknown = await createSandbox({
      management: true,
      nodes: [
        { name: 'ok', underlayAddress: '172.31.0.1/16', podCIDRs: ['10.244.1.0/24'], pods: 1 },
        { name: 'bad', underlayAddress: '172.31.0.2/16', underlayAddress6: 'ff02::5/64' },
      ],
    }).then(
      async (sb) => {
        await sb.destroy();
        assert.fail('the build should have failed');
      },
      (e: unknown) => e,
    );
    assert.ok(error instanceof Error);
    assert.match(error.message, /^sandbox (wl[0-9a-f]{4}-): build failed: .*"addr add ff02::5\/64 dev eth0 nodad" in wl[0-9a-f]{4}-bad failed/);
    const prefix = /^sandbox (wl[0-9a-f]{4}-)/.exec(error.message)![1]!;
    assert.deepEqual(await namesWithPrefix(prefix), []);
    assert.deepEqual(await rootNames(), before);
  });
});

const fixture = fileURLToPath(new URL('./fixtures/hold-sandbox.ts', import.meta.url));

async function startHolder(mode: 'wait' | 'exit' | 'hang') {
  const child = execa(process.execPath, ['--import', 'tsx', fixture, mode], { reject: false, buffer: false });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const started = JSON.parse(line.toString()) as { prefix: string; pid: number };
  return { child, ...started };
}

describe('sandbox cleanup when its process ends', { skip }, () => {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    test(`${signal} tears the sandbox down, then exits ${code}`, async () => {
      const { child, prefix, pid } = await startHolder('wait');
      assert.ok((await namesWithPrefix(prefix)).length > 0);
      child.kill(signal);
      const result = await child;
      assert.equal(result.exitCode, code);
      assert.deepEqual(await namesWithPrefix(prefix), []);
      assert.equal(await isAlive(pid), false);
    });
  }

  test('process.exit without destroy() still removes the sandbox', async () => {
    const { child, prefix, pid } = await startHolder('exit');
    const result = await child;
    assert.equal(result.exitCode, 3);
    assert.deepEqual(await namesWithPrefix(prefix), []);
    assert.equal(await isAlive(pid), false);
  });

  test("the sweep removes a killed run's sandbox and processes, and spares live ones", async () => {
    await withSandbox(TWO_LOCATIONS, async (live) => {
      const { child, prefix, pid } = await startHolder('hang');
      child.kill('SIGKILL');
      await child;
      assert.ok((await namesWithPrefix(prefix)).length > 0, 'a SIGKILLed owner cleans up nothing');
      assert.ok(startTimeOf(pid) !== undefined);

      const report = await sweepLeftoverSandboxes();
      assert.ok(report.prefixes.includes(prefix));
      assert.ok(report.killedPids.includes(pid));
      assert.deepEqual(await namesWithPrefix(prefix), []);
      assert.equal(await isAlive(pid), false);
      assert.ok(!report.prefixes.includes(live.prefix));
      assert.ok(await live.reaches(live.nodes[0]!, live.nodes[1]!.underlayIP), 'live sandbox untouched');
    });
  });
});

describe('sandbox with a cgroup per node', { skip }, () => {
  test("a node's processes and its pods' run in the node's cgroup, which its processes can see", async () => {
    const sb = await createSandbox(
      { nodes: [{ name: 'a', underlayAddress: '172.31.0.11/16', podCIDRs: ['10.244.1.0/24'], pods: 1 }] },
      { cgroups: true, handleSignals: false },
    );
    let root = '';
    try {
      root = sb.cgroups!.root;
      const node = sb.nodes[0]!;
      const cgroupOf = async (target: { netns: string }) => (await sb.exec(target, 'cat', ['/proc/self/cgroup'])).stdout;
      assert.match(await cgroupOf(node.pods[0]!), new RegExp(`^0::/${sb.prefix}sandbox/a$`, 'm'));
      assert.match(await cgroupOf(node), new RegExp(`^0::/${sb.prefix}sandbox/a$`, 'm'));
      const visible = sb.visibleCgroupOf('a')!;
      assert.equal((await sb.exec(node, 'test', ['-f', `${visible}/cgroup.procs`], { allowFailure: true })).exitCode, 0);
    } finally {
      await sb.destroy();
    }
    assert.equal(existsSync(root), false, 'the cgroups are removed');
  });
  test("killContainer ends every process of one container of a node at once, children included, and no other", async () => {
    const sb = await createSandbox(
      { nodes: [{ name: 'a', underlayAddress: '172.31.0.11/16', podCIDRs: ['10.244.1.0/24'], pods: 0 }] },
      { cgroups: true, handleSignals: false },
    );
    let root = '';
    try {
      root = sb.cgroups!.root;
      const node = sb.nodes[0]!;
      // A "container" whose main process has a child of its own (the way an agent starts wireguard-go).
      const main = sb.spawn(node, 'sh', ['-c', 'sleep 600 & echo $!; wait'], { container: 'agent' });
      const sibling = sb.spawn(node, 'sleep', ['600'], { container: 'wireguard' });
      const childPid = await new Promise<number>((resolve) => main.stdout?.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
      assert.match(readFileSync(`/proc/${childPid}/cgroup`, 'utf8'), new RegExp(`^0::/${sb.prefix}sandbox/a/agent$`, 'm'));
      await sb.killContainer('a', 'agent');
      assert.equal((await main).signal, 'SIGKILL');
      assert.equal(startTimeOf(childPid), undefined, "the main process's child is gone too");
      assert.equal(sibling.exitCode, null, 'another container of the node runs on');
    } finally {
      await sb.destroy();
    }
    assert.equal(existsSync(root), false, 'the cgroups are removed, containers included');
  });
});
