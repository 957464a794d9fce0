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
  const r = spawnSync(process.execPath, [cliPath(), ...args], { encoding: 'utf8' });
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

test('the installed entry point starts Node with the agent\'s young-generation flags', () => {
  const bin = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'bin', 'wirelane.js');
  // Run as an executable (its #! line), printing the flags Node got before the CLI runs.
  const r = spawnSync(bin, ['--help'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '--import=data:text/javascript,process.stderr.write(JSON.stringify(process.execArgv))' } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: wirelane/);
  assert.deepEqual(JSON.parse(r.stderr), ['--min-semi-space-size=16', '--max-semi-space-size=32']);
});

test('failures are one line on stderr with a non-zero exit', () => {
  const cases: [string[], number, RegExp][] = [
    [['nope'], 2, /^wirelane: unknown command "nope"/],
    [['graph', '--bogus'], 2, /^wirelane: Unknown option '--bogus'/],
    [['topology', '--from', FIXTURE], 2, /^wirelane: --node is required$/],
    [['topology', '--from', '/nonexistent', '--node', 'a'], 1, /^wirelane: \/nonexistent: no such file$/],
    [['topology', '--from', FIXTURE, '--node', 'zz'], 1, /^wirelane: Node "zz": not in the cluster$/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--subnet', '10.4.0.0/33'], 2, /^wirelane: --subnet: "10.4.0.0\/33" is not a CIDR/],
    [['topology', '--from', FIXTURE, '--node', 'a', '--granularity', 'galaxy'], 2, /^wirelane: --granularity: "galaxy" is not a granularity/],
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

test('a bad cluster file is one error naming the document and the object', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-cli-'));
  try {
    const file = join(dir, 'c.yaml');
    await writeFile(file, 'apiVersion: v1\nkind: Node\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: b\n  annotations: {wirelane.io/internal-ip: "300.1.2.3/99"}\n');
    const r = wirelane('graph', '--from', file);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `wirelane: ${file}: document 2 (Node "b"): Node "b": annotation wirelane.io/internal-ip: "300.1.2.3/99" is not a CIDR\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
