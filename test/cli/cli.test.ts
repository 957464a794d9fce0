// The CLI contract: --help everywhere, one line on stderr and a non-zero exit on failure, data on
// stdout. Runs the compiled CLI as operators do (the setup script builds it).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';

const FIXTURE = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'fixtures', 'cluster.yaml');

function wirelane(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  // Without --from or --kubeconfig the commands would read $KUBECONFIG's cluster.
  const env = { ...process.env };
  delete env['KUBECONFIG'];
  const r = spawnSync(process.execPath, [cliPath(), ...args], { encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('every command has --help', () => {
  const top = wirelane('--help');
  assert.equal(top.code, 0);
  for (const cmd of ['agent', 'cleanup', 'topology', 'showconf', 'graph', 'keygen', 'demo', 'probe']) {
    assert.match(top.stdout, new RegExp(`^  ${cmd} `, 'm'));
    const help = wirelane(cmd, '--help');
    assert.equal(help.code, 0, cmd);
    assert.match(help.stdout, new RegExp(`^Usage: wirelane ${cmd}`), cmd);
  }
});

test('the installed entry point starts Node with the agent\'s heap flags and malloc arenas', () => {
  const bin = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'bin', 'wirelane.js');
  // Run as an executable (its #! line), printing the flags and arena setting Node got before the CLI runs.
  const probe = 'process.stderr.write(JSON.stringify([process.execArgv,process.env.MALLOC_ARENA_MAX]))';
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: `--import=data:text/javascript,${probe}` };
  delete env['MALLOC_ARENA_MAX'];
  const r = spawnSync(bin, ['--help'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: wirelane/);
  assert.deepEqual(JSON.parse(r.stderr), [['--max-semi-space-size=2', '--heap-growing-percent=10'], '2']);
});

test('failures are one line on stderr with a non-zero exit', () => {
  const cases: [string[], number, RegExp][] = [
    [['nope'], 2, /^wirelane: unknown command "nope"/],
    [['graph', '--bogus'], 2, /^wirelane: Unknown option '--bogus'/],
    [['topology', '--from', FIXTURE], 2, /^wirelane: --node is required$/],
    [['topology', '--from', '/nonexistent', '--node', 'a'], 1, /^wirelane: \/nonexistent: no such file$/],
    [['topology', '--from', FIXTURE, '--node', 'zz'], 1, /^wirelane: Node "zz": not in the cluster$/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--subnet', '10.4.0.0/33'], 2, /^wirelane: --subnet: "10.4.0.0\/33" is not a CIDR/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--subnet', '10.4.0.0/16,10.5.0.0/16'], 2, /^wirelane: --subnet: "10.4.0.0\/16,10.5.0.0\/16" is not one CIDR per family$/],
    [['agent', '--source', 'file:x', '--subnet', 'fd00:4::/64', '--subnet', 'fd00:5::/64'], 2, /^wirelane: --subnet: "fd00:4::\/64,fd00:5::\/64" is not one CIDR per family$/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--granularity', 'galaxy'], 2, /^wirelane: --granularity: "galaxy" is not a granularity/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--service-cidr', '10.96.0.0/12,10.100.0.0/99'], 2, /^wirelane: --service-cidr: "10.100.0.0\/99" is not a CIDR/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--allow-wide-claims=maybe'], 2, /^wirelane: --allow-wide-claims: "maybe" is not true or false$/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--resync-period', 'soon'], 2, /^wirelane: --resync-period: "soon" is not a duration/],
    [['topology', '--node', 'a'], 2, /^wirelane: no Kubernetes credentials: give --kubeconfig, run in a pod, or give --from FILE$/],
    [['graph', '--from', FIXTURE, '--kubeconfig', FIXTURE], 2, /^wirelane: give --from FILE or --kubeconfig FILE, not both$/],
    [['graph', '--kubeconfig', '/nonexistent'], 1, /^wirelane: kubeconfig \/nonexistent: no such file$/],
    [['showconf', 'node'], 2, /^wirelane: want: showconf node NAME \| showconf peer NAME$/],
    [['graph', '--from', FIXTURE, '--format', 'png'], 2, /^wirelane: --format: "png" is not one of dot, svg$/],
    [['agent', '--source', 'file:x', '--port', '0'], 2, /^wirelane: --port: "0" is not an integer in 1..65535$/],
    [['agent', '--source', 'file:x', '--resync-period', 'soon'], 2, /^wirelane: --resync-period: "soon" is not a duration/],
    [['agent', '--source', 'file:x', '--interface', 'much-too-long-name'], 2, /^wirelane: --interface: "much-too-long-name" is not an interface name/],
    [['agent', '--source', 'file:x', '--listen', 'nowhere'], 2, /^wirelane: --listen: "nowhere" is not \[HOST\]:PORT$/],
    [['agent', '--source', 'file:x', '--local=maybe'], 2, /^wirelane: --local: "maybe" is not true or false$/],
    [['agent', '--source', 'carrier-pigeon'], 2, /^wirelane: --source: "carrier-pigeon" is not kubernetes or file:PATH$/],
    [['cleanup', '--bpf-dir', 'pins'], 2, /^wirelane: --bpf-dir: "pins" is not an absolute path$/],
    [['cleanup', '--interface', 'much-too-long-name'], 2, /^wirelane: --interface: "much-too-long-name" is not an interface name/],
    [['cleanup', '--annotations=maybe'], 2, /^wirelane: --annotations: "maybe" is not true or false$/],
  ];
  for (const [args, code, message] of cases) {
    const r = wirelane(...args);
    assert.equal(r.code, code, args.join(' '));
    assert.match(r.stderr.trimEnd(), message, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
  }
});

test('a malformed value in a cluster file is one warning naming the document, object and field; the rest is computed', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  // b's internal IP is bad: b keeps everything else (it forms its own segment, as without one).
  await writeFile(file, (await readFile(FIXTURE, 'utf8')).replace('wirelane.io/internal-ip: 192.168.0.2/24', 'wirelane.io/internal-ip: "300.1.2.3/99"'));
  const warning = `wirelane: warning: ${file}: document 2 (Node "b"): Node "b": annotation wirelane.io/internal-ip: "300.1.2.3/99" is not a CIDR\n`;
  const r = wirelane('topology', '--from', file, '--node', 'a');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, warning);
  const segments = (JSON.parse(r.stdout) as { segments: { nodes: string[] }[] }).segments.map((s) => s.nodes);
  assert.deepEqual(segments, [['a'], ['c', 'd'], ['b']]);
  for (const args of [['graph'], ['showconf', 'node', 'a'], ['showconf', 'peer', 'laptop']]) {
    const other = wirelane(...args, '--from', file);
    assert.equal(other.code, 0, args.join(' '));
    assert.equal(other.stderr, warning, args.join(' '));
  }
  const strict = wirelane('topology', '--from', file, '--node', 'a', '--strict');
  assert.equal(strict.code, 1);
  assert.equal(strict.stdout, '');
  assert.equal(strict.stderr, `${warning}wirelane: --strict: 1 problem in the input (above)\n`);
  assert.equal(wirelane('topology', '--from', FIXTURE, '--node', 'a', '--strict').code, 0, 'a clean file passes --strict');
});

test('a structural fault in the cluster file is still one error naming the document', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  await writeFile(file, 'apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n');
  const r = wirelane('graph', '--from', file);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `wirelane: ${file}: document 2 (Pod "p"): unsupported apiVersion/kind v1/Pod\n`);
});

test('--service-cidr and --allow-wide-claims decide claims as the agent\'s flags do; a dropped claim is a warning', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const peersOf = (r: { stdout: string }) => (JSON.parse(r.stdout) as { peers: { name: string; allowedIPs: string[] }[] }).peers.map((p) => [p.name, p.allowedIPs]);
  const inServiceRange = wirelane('topology', '--from', FIXTURE, '--node', 'a', '--service-cidr', '10.96.0.0/12,10.5.0.0/16');
  assert.equal(inServiceRange.code, 0, inServiceRange.stderr);
  assert.deepEqual(peersOf(inServiceRange), [['laptop', []]], 'the laptop\'s only address is in a service range: it is dropped');
  assert.equal(inServiceRange.stderr, `wirelane: warning: ${FIXTURE}: document 5 (Peer "laptop"): Peer "laptop": spec.allowedIPs: 10.5.0.1/32 overlaps the service CIDR (10.5.0.0/16)\n`);
  assert.equal(inServiceRange.stderr.split('\n').length, 2, 'one line');
  const file = join(dir, 'wide.yaml');
  await writeFile(file, (await readFile(FIXTURE, 'utf8')).replace('10.5.0.1/32', '10.5.0.1/32, 100.0.0.0/6'));
  const narrow = wirelane('topology', '--from', file, '--node', 'a');
  assert.deepEqual(peersOf(narrow), [['laptop', ['10.5.0.1/32']]]);
  assert.match(narrow.stderr, /^wirelane: warning: .*: Peer "laptop": spec\.allowedIPs: 100\.0\.0\.0\/6 wider than \/8 \(--allow-wide-claims allows it\)\n$/);
  const wide = wirelane('topology', '--from', file, '--node', 'a', '--allow-wide-claims');
  assert.equal(wide.stderr, '');
  assert.deepEqual(peersOf(wide), [['laptop', ['10.5.0.1/32', '100.0.0.0/6']]]);
});

test('topology -o json prints the documented shape', () => {
  const r = wirelane('topology', '--from', FIXTURE, '--node', 'a', '-o', 'json');
  assert.equal(r.code, 0, r.stderr);
  const t = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.equal(t['node'], 'a');
  assert.equal(t['leader'], true);
  assert.match(String(t['wireguardCIDR']), /^10\.4\.\d+\.\d+\/16$/);
  const segments = t['segments'] as Record<string, unknown>[];
  assert.deepEqual(Object.keys(segments[0]!).slice(0, 8), ['key', 'location', 'leader', 'nodes', 'wireguardIP', 'endpoint', 'publicKey', 'allowedIPs']);
  assert.deepEqual(segments.map((s) => [s['key'], s['leader'], s['nodes']]), [['location:1', 'a', ['a', 'b']], ['location:2', 'c', ['c', 'd']]]);
  const peers = t['peers'] as Record<string, unknown>[];
  assert.deepEqual(peers.map((p) => [p['name'], p['endpoint'], p['allowedIPs']]), [['laptop', null, ['10.5.0.1/32']]]);
  const routes = t['routes'] as Record<string, unknown>[];
  assert.deepEqual(Object.keys(routes[0]!), ['dst', 'gw', 'dev', 'src', 'onlink', 'table']);
  assert.ok(routes.some((r) => r['dst'] === '10.2.3.0/24' && r['dev'] === 'wirelane0' && r['src'] === '192.168.0.1' && r['onlink'] === true && r['table'] === 'main'));
  assert.ok(Array.isArray(t['rules']));
  const b = JSON.parse(wirelane('topology', '--from', FIXTURE, '--node', 'b').stdout) as Record<string, unknown>;
  assert.equal(b['wireguardCIDR'], '10.4.0.0/16', 'a non-leader reports the subnet');
});

test('topology, showconf and graph with a WireGuard subnet per family (comma-separated or repeated)', () => {
  const comma = wirelane('topology', '--from', FIXTURE, '--node', 'a', '-o', 'json', '--subnet', '10.4.0.0/16,fd00:4::/64');
  assert.equal(comma.code, 0, comma.stderr);
  const repeated = wirelane('topology', '--from', FIXTURE, '--node', 'a', '-o', 'json', '--subnet', '10.4.0.0/16', '--subnet', 'fd00:4::/64');
  assert.equal(repeated.stdout, comma.stdout, 'the same topology either way');
  const t = JSON.parse(comma.stdout) as { subnets: string[]; wireguardCIDRs: string[]; segments: { wireguardIPs: string[]; allowedIPs: string[] }[] };
  assert.deepEqual(t.subnets, ['10.4.0.0/16', 'fd00:4::/64']);
  assert.match(t.wireguardCIDRs.join(' '), /^10\.4\.\d+\.\d+\/16 fd00:4::[0-9a-f:]+\/64$/);
  const v4Only = JSON.parse(wirelane('topology', '--from', FIXTURE, '--node', 'a', '-o', 'json').stdout) as typeof t;
  for (const [i, s] of t.segments.entries()) {
    assert.equal(s.wireguardIPs[0], v4Only.segments[i]?.wireguardIPs[0], 'the IPv4 address is the one a single IPv4 --subnet gives');
    assert.ok(s.allowedIPs.includes(`${s.wireguardIPs[1]}/128`), 'the IPv6 WireGuard IP is in the AllowedIPs');
  }
  const laptop = wirelane('showconf', 'peer', 'laptop', '--from', FIXTURE, '--subnet', '10.4.0.0/16,fd00:4::/64').stdout;
  for (const s of t.segments) assert.ok(laptop.includes(`${s.wireguardIPs[1]}/128`), `a Peer reaches ${s.wireguardIPs[1]}`);
  const graph = wirelane('graph', '--from', FIXTURE, '--subnet', '10.4.0.0/16,fd00:4::/64').stdout;
  assert.match(graph, /label="10\.4\.0\.0\/16, fd00:4::\/64";/);
  for (const s of t.segments) assert.ok(graph.includes(`\\n${s.wireguardIPs[1]}\\n`), `the graph shows ${s.wireguardIPs[1]} on its leader`);
});

test('showconf prints configurations without private keys', () => {
  const leader = wirelane('showconf', 'node', 'a', '--from', FIXTURE);
  assert.equal(leader.code, 0);
  assert.match(leader.stdout, /^\[Interface\]\nListenPort = 51820\n\n\[Peer\]\nPublicKey = /);
  assert.equal(leader.stdout.match(/\[Peer\]/g)?.length, 2, 'one [Peer] for location 2, one for the laptop');
  assert.doesNotMatch(leader.stdout, /PrivateKey/);
  assert.match(wirelane('showconf', 'node', 'b', '--from', FIXTURE).stdout, /^# b is not the leader of location:1/);
  const asPeer = wirelane('showconf', 'node', 'c', '--as-peer', '--from', FIXTURE).stdout;
  assert.equal(asPeer.match(/\[Peer\]/g)?.length, 1);
  assert.match(asPeer, /Endpoint = 203\.0\.113\.3:51820/);
  const laptop = wirelane('showconf', 'peer', 'laptop', '--from', FIXTURE).stdout;
  assert.equal(laptop.match(/\[Peer\]/g)?.length, 2, 'one [Peer] per segment');
  assert.equal(laptop.match(/PersistentKeepalive = 25/g)?.length, 2, "the Peer's keepalive on each");
});

test('showconf hides preshared keys unless --show-keys', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-psk-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const psk = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
  const file = join(dir, 'cluster.yaml');
  await writeFile(file, (await readFile(FIXTURE, 'utf8')).replace('  persistentKeepalive: 25', `  persistentKeepalive: 25\n  presharedKey: ${psk}`));
  for (const args of [['node', 'a'], ['peer', 'laptop']]) {
    const hidden = wirelane('showconf', ...args, '--from', file).stdout;
    assert.match(hidden, /PresharedKey = \(hidden\)/, args.join(' '));
    assert.ok(!hidden.includes(psk), args.join(' '));
    assert.match(wirelane('showconf', ...args, '--from', file, '--show-keys').stdout, new RegExp(`PresharedKey = ${psk.replace(/[+/]/g, '\\$&')}`), args.join(' '));
  }
});

test('graph renders DOT, and SVG through Graphviz', () => {
  assert.match(wirelane('graph', '--from', FIXTURE).stdout, /^digraph wirelane \{/);
  const svg = wirelane('graph', '--from', FIXTURE, '--format', 'svg');
  assert.equal(svg.code, 0, svg.stderr);
  assert.match(svg.stdout, /<svg[\s>]/);
});

test('keygen writes a 0600 key and prints its public key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-cli-'));
  try {
    const r = wirelane('keygen', '--state-dir', dir);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
    assert.equal((await stat(join(dir, 'key'))).mode & 0o777, 0o600);
    const again = wirelane('keygen', '--state-dir', dir);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists \(use --force to replace it\)/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("--annotations-dir lays the agents' shared annotations over the file's Nodes, as the agents see them", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-annotations-dir-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const laptopKey = 'mbKwtBSuPNdAdtXuK7OtyY0mdz44/XomxxhXBcAKgBg=';
  // a, location 1's annotated leader, marked its tunnels broken; c saw the laptop behind a NAT.
  await writeFile(join(dir, 'a.json'), JSON.stringify({ annotations: { 'wirelane.io/tunnels-broken': '1764700000', 'wirelane.io/key': 'not the operator\'s' } }));
  await writeFile(join(dir, 'c.json'), JSON.stringify({ annotations: { 'wirelane.io/discovered-endpoints': JSON.stringify({ [laptopKey]: '198.51.100.9:40000' }) } }));
  await writeFile(join(dir, '.c.json.123.tmp'), '{');

  assert.match(wirelane('showconf', 'node', 'b', '--from', FIXTURE).stdout, /^# b is not the leader/, 'without the directory: a leads');
  const b = wirelane('showconf', 'node', 'b', '--from', FIXTURE, '--annotations-dir', dir);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout, /^\[Interface\]\nListenPort = 51820\n/, 'with it: a is skipped, b leads location 1');
  assert.equal(b.stderr, `wirelane: warning: ${join(dir, 'a.json')}: wirelane.io/key ignored: the annotations directory carries only wirelane.io/tunnels-broken, wirelane.io/discovered-endpoints, wirelane.io/wireguard-ip, wirelane.io/other-wireguard-ip\n`);
  assert.match(wirelane('showconf', 'node', 'a', '--from', FIXTURE, '--annotations-dir', dir).stdout, /^# a is not the leader/);
  const c = wirelane('showconf', 'node', 'c', '--from', FIXTURE, '--annotations-dir', dir).stdout;
  assert.match(c, new RegExp(`PublicKey = ${laptopKey.replace(/[+/]/g, '\\$&')}\\n[^[]*Endpoint = 198\\.51\\.100\\.9:40000`), 'the laptop where c saw it');

  const bad = wirelane('showconf', 'node', 'a', '--annotations-dir', dir, '--kubeconfig', '/nonexistent');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--annotations-dir: only with --from FILE/);
});
