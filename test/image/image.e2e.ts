// The image as an operator gets it: the OCI archive of scripts/build-image.mjs loaded with podman,
// then `wirelane --version`, `wirelane probe -o json`, the iptables backend it picks, and two agents
// run from it in a sandbox (two nodes in two locations: a pod reaches the other across WireGuard, and
// a ClusterIP Service answers from both). `npm run image:test` builds the image first; not part of
// `npm test` (the build takes minutes). Root, podman and runc (the build script installs them).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { findCgroup2Mount } from '../../src/bpf/mounts.js';
import { echoRequests } from '../../src/sandbox/echo/index.js';
import { addEchoService, ECHO_SERVICE_IP } from '../../src/sandbox/echo-service.js';
import { cliPath, MeshCluster } from '../../src/sandbox/mesh-cluster.js';

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
const work = mkdtempSync(join(tmpdir(), 'wirelane-image-test-'));
// These hosts need both (podman 4.3): crun refuses a hybrid cgroup layout, and the default ulimits
// cannot be set from here (shared/notes/images-and-cni-here.md).
const CONTAINERS_CONF = join(work, 'containers.conf');
const RUN = ['run', '--rm', '--runtime', 'runc'];
// The agent's cgroup root in the DaemonSet: the host's cgroup2 hierarchy mounted at this path.
const CGROUP_ROOT = '/run/wirelane/cgroupv2';

let image = '';
let loadedHere = false;

function podman(args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync('podman', args, { encoding: 'utf8', env: { ...process.env, CONTAINERS_CONF } });
}

function ok(result: SpawnSyncReturns<string>, what: string): string {
  assert.equal(result.status, 0, `${what}: ${result.stderr}`);
  return result.stdout;
}

before(() => {
  assert.equal(process.getuid?.(), 0, 'the image test runs containers and namespaces: run it as root');
  assert.equal(spawnSync('podman', ['--version']).status, 0, 'podman is missing: npm run image installs it');
  writeFileSync(CONTAINERS_CONF, '[containers]\ndefault_ulimits = []\n');
  const archive = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-image.mjs'), '--archive'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(existsSync(archive), `${archive} is missing: npm run image builds it`);
  const name = `docker.io/library/${spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-image.mjs'), '--name'], { encoding: 'utf8' }).stdout.trim()}`;
  loadedHere = podman(['image', 'exists', name]).status !== 0;
  const loaded = ok(podman(['load', '--input', archive]), 'podman load');
  image = /^Loaded image(?:\(s\))?: (\S+)$/m.exec(loaded)?.[1] ?? '';
  assert.equal(image, name, 'the archive names the image docker.io/library/NAME:VERSION, as kubelet resolves NAME:VERSION');
});

after(() => {
  if (loadedHere && image !== '') podman(['rmi', image]);
  rmSync(work, { recursive: true, force: true });
});

test("wirelane --version in the image prints package.json's version", () => {
  assert.equal(ok(podman([...RUN, image, '--version']), '--version'), `wirelane ${PACKAGE.version}\n`);
});

test('wirelane probe -o json in the image decides what the host decides, with the addon and BPF objects it ships', () => {
  const cgroup2 = findCgroup2Mount();
  assert.ok(cgroup2 !== undefined, 'this host has a cgroup v2 hierarchy');
  const host = spawnSync(process.execPath, [cliPath(), 'probe', '-o', 'json', '--cgroup-root', cgroup2], { encoding: 'utf8' });
  const inImage = podman([...RUN, '--network', 'host', '--privileged', '-v', `${cgroup2}:${CGROUP_ROOT}`, image, 'probe', '-o', 'json', '--cgroup-root', CGROUP_ROOT]);
  type Probe = Record<string, { usable: boolean; checks: { name: string; ok: boolean; required: boolean }[] }> & { mode: string };
  const [expected, actual] = [JSON.parse(ok(host, 'probe on the host')) as Probe, JSON.parse(ok(inImage, 'probe in the image')) as Probe];
  assert.equal(actual.mode, expected.mode);
  // Required checks only: the optional ones (a bpffs mounted somewhere) depend on the mounts around.
  const required = (p: Probe, mode: string) => p[mode]!.checks.filter((c) => c.required).map((c) => `${c.name}: ${c.ok}`);
  for (const mode of ['ebpf', 'iptables', 'userspace']) {
    assert.equal(actual[mode]?.usable, expected[mode]?.usable, mode);
    assert.deepEqual(required(actual, mode), required(expected, mode), mode);
  }
});

test("the image's iptables is the backend that holds the host's rules", async (t) => {
  const netns = (name: string) => `wlimg${process.pid}-${name}`;
  const inNetns = (name: string, file: string, args: readonly string[]) => ok(spawnSync('ip', ['netns', 'exec', netns(name), file, ...args], { encoding: 'utf8' }), `${file} in ${name}`);
  const cases: [name: string, setUp: () => void, backend: string][] = [
    ['empty', () => {}, 'nf_tables'],
    ['legacy', () => inNetns('legacy', 'iptables-legacy', ['-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT']), 'legacy'],
    ['nft', () => inNetns('nft', 'iptables-nft', ['-A', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT']), 'nf_tables'],
    // kubelet's chain names its backend, whichever holds more rules.
    ['hinted', () => {
      inNetns('hinted', 'iptables-nft', ['-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
      for (const port of ['9', '13']) inNetns('hinted', 'iptables-legacy', ['-A', 'INPUT', '-p', 'tcp', '--dport', port, '-j', 'ACCEPT']);
    }, 'nf_tables'],
  ];
  try {
    for (const [name, setUp, backend] of cases) {
      await t.test(`${name}: ${backend}`, () => {
        ok(spawnSync('ip', ['netns', 'add', netns(name)], { encoding: 'utf8' }), 'ip netns add');
        setUp();
        const inImage = (file: string, args: readonly string[]) =>
          ok(podman([...RUN, '--privileged', '--network', `ns:/run/netns/${netns(name)}`, '--entrypoint', file, image, ...args]), `${file} in the image`);
        assert.match(inImage('iptables', ['-V']), new RegExp(`^iptables v[\\d.]+ \\(${backend}\\)$`, 'm'));
        // The wrapper runs the call it stood in for: the saved rules are the host's.
        if (name === 'legacy') assert.match(inImage('iptables-save', []), /^-A INPUT -p tcp -m tcp --dport 9 -j ACCEPT$/m);
      });
    }
  } finally {
    for (const [name] of cases) spawnSync('ip', ['netns', 'delete', netns(name)]);
  }
});


test('two agents run from the image mesh their nodes and proxy a ClusterIP Service', { timeout: 300_000 }, async () => {
  const nodes = [{ name: 'a', location: 'east' }, { name: 'b', location: 'west' }];
  const cluster = await MeshCluster.create({ nodes, source: 'file' });
  const agents = new Map<string, ChildProcess>();
  const containerOf = (node: string) => `${cluster.sandbox.prefix}agent-${node}`;
  try {
    const pods = cluster.sandbox.pods;
    await addEchoService(cluster);
    mkdirSync('/var/run/wireguard', { recursive: true });
    for (const { name } of nodes) {
      const node = cluster.sandbox.node(name);
      // As the DaemonSet runs it: privileged, host PID namespace, the node's network namespace, the
      // wireguard-go socket directory; here also the sandbox's cgroups and bpffs (under /run/wirelane)
      // and the cluster file and state directory.
      const args = [...RUN, '--name', containerOf(name), '--privileged', '--pid', 'host', '--network', `ns:/run/netns/${node.netns}`,
        '-v', '/var/run/wireguard:/var/run/wireguard', '-v', '/run/wirelane:/run/wirelane', '-v', `${cluster.dir}:${cluster.dir}`,
        image, 'agent', '--source', `file:${cluster.clusterFile}`, '--hostname', name, '--state-dir', cluster.stateDir(name),
        '--interface', cluster.interfaceOf(name), '--listen', ':1107', '--log-level', 'debug', '--resync-period', '5s',
        '--cgroup-root', cluster.sandbox.visibleCgroupOf(name) as string, '--bpf-dir', join(cluster.bpffs, name)];
      const log = openSync(cluster.logFile(name), 'a');
      agents.set(name, spawn('podman', args, { stdio: ['ignore', log, log], env: { ...process.env, CONTAINERS_CONF } }));
      closeSync(log);
    }
    await cluster.waitReady(nodes.map((n) => n.name), 60_000);
    // The mode the agent in the image chose is the one the host's probe picks for that node.
    const probe = spawnSync(process.execPath, [cliPath(), 'probe', '-o', 'json', '--cgroup-root', cluster.sandbox.visibleCgroupOf('a') as string], { encoding: 'utf8' });
    const expectedMode = (JSON.parse(ok(probe, 'probe on the host')) as { mode: string }).mode;
    assert.equal((await cluster.log('a')).match(/"mode":"(\w+)"[^\n]*services applied/)?.[1], expectedMode, 'the service proxy mode');
    const [a, b] = [pods.find((p) => p.node === 'a')!, pods.find((p) => p.node === 'b')!];
    assert.ok(await cluster.waitPing(a, b.ip), `ping ${a.ip} → ${b.ip} across WireGuard\n${await cluster.logTails(20)}`);
    assert.ok(await cluster.handshakes('a') > 0, 'a WireGuard handshake between the locations');
    const answers = await echoRequests(cluster.sandbox, a, 'tcp', ECHO_SERVICE_IP, 80, { count: 20 });
    assert.deepEqual([...new Set(answers.map((line) => line.split(' ')[0]))].sort(), pods.map((p) => p.name).sort(), answers.join('\n'));
  } finally {
    // SIGTERM to podman (by PID) reaches the agent; the containers go with --rm, or by name here.
    for (const child of agents.values()) {
      if (child.exitCode !== null) continue;
      child.kill('SIGTERM');
      await Promise.race([once(child, 'exit'), new Promise((resolve) => setTimeout(resolve, 20_000))]);
    }
    for (const name of agents.keys()) podman(['rm', '--force', '--ignore', containerOf(name)]);
    await cluster.destroy();
  }
});
