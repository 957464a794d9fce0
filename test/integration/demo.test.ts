// Issue 12, "Measured": `wirelane demo` (what `npm run demo` runs, the compiled CLI) passes every
// check on the routed world and prints what it proved: IPv4 and IPv6 pod to pod across locations,
// the Service, NAT traversal, the laptop as a wg-quick Peer reaching both locations, and failover
// (east's leader cut off at its router, its mark shared through the annotations directory); it
// leaves none of its namespaces behind.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCommand } from '../../src/host/command.js';
import { listNetns } from '../../src/host/netns.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';

const skip = await capabilitySkip('the demo', [...AGENT_TOOLS, ['wg-quick', ['-h']]]);

/** The check lines under a heading (`IPv6 pod to pod:`), up to the next unindented line. */
function section(out: string, heading: string): string[] {
  const lines = out.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${heading}`) && l.endsWith(':'));
  assert.ok(start >= 0, `a section "${heading}":\n${out}`);
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('  '));
  return lines.slice(start + 1, end < 0 ? undefined : end).filter((l) => !l.startsWith('  note'));
}

const allOk = (lines: readonly string[]) => lines.every((l) => l.startsWith('  ok   '));
/** The checks' names without their details and with parentheses emptied (addresses vary). */
const checkNames = (lines: readonly string[]) => lines.map((l) => l.replace(/^  ok   /, '').replace(/: .*$/, '').replace(/\(.*?\)/g, '()'));

test('the demo passes every check and prints what it proved: IPv6, NAT traversal, a Peer in both locations, failover', { skip, timeout: 900_000 }, async (t) => {
  // A bound for a hung demo (its own waits are bounded), not a measure: it cleans up on SIGTERM.
  const r = await runCommand(process.execPath, [cliPath(), 'demo'], { allowFailure: true, timeoutMs: 600_000 });
  const out = r.stdout;
  assert.equal(r.exitCode, 0, `the demo exits 0:\n${out}\n${r.stderr}`);

  const [pods4, pods6] = [section(out, 'IPv4 pod to pod'), section(out, 'IPv6 pod to pod')];
  assert.equal(pods4.length, 12, 'every pod pings every other over IPv4');
  assert.ok(allOk(pods4), `IPv4:\n${pods4.join('\n')}`);
  // c and d sit on east's two subnets: their IPv6 pings cross the crosssubnet VXLAN tunnel.
  assert.equal(pods6.length, 12, 'every pod pings every other over IPv6');
  assert.ok(allOk(pods6), `IPv6:\n${pods6.join('\n')}`);
  assert.equal(pods6.filter((l) => l.endsWith('across WireGuard')).length, 8, 'eight of them cross locations');
  assert.ok(pods6.every((l) => /\(fd44:[0-9a-f:]+\)/.test(l)), 'to IPv6 addresses');

  const nat = section(out, 'NAT traversal');
  assert.ok(allOk(nat) && nat.length === 1, `NAT traversal:\n${nat.join('\n')}`);
  assert.match(nat[0]!, /sees it at 198\.51\.100\.2:\d+$/, "west's leader sees east's at east's router");

  const peer = section(out, 'Peer laptop');
  assert.ok(allOk(peer), `Peer:\n${peer.join('\n')}`);
  assert.deepEqual(
    checkNames(peer),
    [
      'wg-quick up routes the pods and the service range into the tunnel',
      'ping a-pod0 () in west from the laptop',
      'ping b-pod0 () in west from the laptop',
      'ping c-pod0 () in east from the laptop',
      'ping d-pod0 () in east from the laptop',
      'Service demo/echo from the laptop',
      "the public leader sees the laptop at 198.51.100.4:<port>, home's router ()",
    ],
    "the laptop reaches both locations' pods (east's leader, behind NAT, where west's saw it) and the Service, and is seen at its home router",
  );
  assert.match(out, /^ {2}note east's leader has no public address: the laptop dials it where west's leader saw it/m);

  // Failover: east's leader (c: first by name, neither annotated) loses its WireGuard UDP at east's
  // router; d takes over, c is marked and out, and every crossing pings again.
  const failover = section(out, 'Failover');
  assert.ok(allOk(failover), `Failover:\n${failover.join('\n')}`);
  assert.deepEqual(
    checkNames(failover),
    [
      "east's router drops its leader's WireGuard UDP",
      'the old leader marked its tunnels broken () and stepped down',
      'ping c-pod0 → a-pod0 () across WireGuard again',
      'ping a-pod0 → c-pod0 () across WireGuard again',
      'ping d-pod0 → b-pod0 () across WireGuard again',
      'ping b-pod0 → d-pod0 () across WireGuard again',
      "west's leader did not move",
    ],
  );
  const moved = /the other east node takes over: c → d, ([\d.]+) s after the drop$/.exec(failover[0]!);
  assert.ok(moved !== null, `leadership moved from c to d, timed: ${failover[0]}`);
  assert.match(failover[1]!, /c: tunnel_broken 1, leader 0$/);
  const resumed = failover.slice(2, 6).map((l) => Number(/: ([\d.]+) s after the drop$/.exec(l)?.[1]));
  assert.ok(resumed.every((ms) => Number.isFinite(ms)), `each crossing timed: ${failover.join('\n')}`);
  assert.doesNotMatch(out, /only by|not run here/, 'nothing left to another test');
  t.diagnostic(`failover: leadership moved ${moved[1]} s after the drop, crossings answered again ${resumed.join(', ')} s after it`);

  assert.match(out, /^proved: .*IPv6 pod to pod \(12\/12\).*NAT traversal \(1\/1\).*Peer laptop \(7\/7\).*Failover \(7\/7\)/m);
  assert.doesNotMatch(out, /^not proved/m);
  const summary = /^(\d+)\/(\d+) checks passed in \d+ s$/m.exec(out);
  assert.ok(summary !== null && summary[1] === summary[2], `every check passed:\n${out}`);
  t.diagnostic(summary[0]);

  const prefix = /^sandbox: namespaces (wl[0-9a-f]{4}-)\*$/m.exec(out)?.[1];
  assert.ok(prefix !== undefined, 'the demo names its namespaces');
  assert.deepEqual((await listNetns()).filter((n) => n.startsWith(prefix)), [], 'none is left');
});
