import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Heartbeat, type Vouch, goneNodes, heardAt, nodeHeartbeatValues, recordHeartbeats, recordVouches } from '../../src/mesh/liveness.js';
import { isNodeReady } from '../../src/mesh/readiness.js';
import { NOW, keyOf, node } from './builder.js';

const RESYNC = 30;
/** Everything a node needs to be ready but a heartbeat. */
const up = { ep: '10.1.0.2:51820', pods: ['10.2.2.0/24'] };
const WINDOW = 2 * RESYNC;
const evidence = (
  heartbeats: Map<string, Heartbeat>,
  opts: { handshakes?: Record<string, number>; trustedSince?: number; gone?: string[]; vouches?: Vouch[] } = {},
) => ({
  heartbeats,
  vouches: opts.vouches ?? [],
  handshakes: new Map(Object.entries(opts.handshakes ?? {}).map(([name, t]) => [keyOf(name) as string, t])),
  trustedSince: opts.trustedSince ?? 0,
  gone: new Set(opts.gone ?? []),
});
/** Is `name` ready at `now` when judged by what this agent heard, as the mesh reconciler overlays it? */
const readyAt = (n: ReturnType<typeof node>, e: ReturnType<typeof evidence>, now: number) => isNodeReady({ ...n, lastSeen: heardAt(n, e, now, WINDOW) }, now, RESYNC);

describe('heartbeats judged by this agent clock', () => {
  test('a first-seen value is heard now, whatever clock wrote it', () => {
    for (const written of [NOW - 86_400, NOW, NOW + 86_400]) {
      const log = recordHeartbeats(new Map(), nodeHeartbeatValues([node('b', { ...up, lastSeen: written })]), NOW);
      assert.deepEqual(log.get('b'), { value: `${written}/`, heardAt: NOW });
    }
  });

  test('an unchanged value keeps its time; a changed one is heard anew', () => {
    let log = recordHeartbeats(new Map(), nodeHeartbeatValues([node('b', { ...up, lastSeen: 100 })]), NOW);
    log = recordHeartbeats(log, nodeHeartbeatValues([node('b', { ...up, lastSeen: 100 })]), NOW + 40);
    assert.equal(log.get('b')?.heardAt, NOW);
    log = recordHeartbeats(log, nodeHeartbeatValues([node('b', { ...up, lastSeen: 115 })]), NOW + 50);
    assert.equal(log.get('b')?.heardAt, NOW + 50);
  });

  test('nodes that are gone or have no last-seen drop out of the log', () => {
    let log = recordHeartbeats(new Map(), nodeHeartbeatValues([node('b'), node('c')]), NOW);
    log = recordHeartbeats(log, nodeHeartbeatValues([node('b', { ...up, lastSeen: null })]), NOW + 1);
    assert.deepEqual([...log.keys()], []);
  });

  test('a node whose clock runs an hour behind stays ready while its heartbeat changes', () => {
    const skew = -3600;
    let log = new Map<string, Heartbeat>();
    for (let t = 0; t <= 300; t += 15) {
      const b = node('b', { ...up, lastSeen: NOW + t + skew });
      log = recordHeartbeats(log, nodeHeartbeatValues([b]), NOW + t);
      assert.equal(readyAt(b, evidence(log), NOW + t), true, `at +${t} s`);
    }
  });

  test('a node whose heartbeat stops is not ready 2 × resync after this agent last saw it change', () => {
    const b = node('b', { ...up, lastSeen: NOW + 999 }); // a clock far ahead changes nothing
    const log = recordHeartbeats(new Map(), nodeHeartbeatValues([b]), NOW);
    assert.equal(readyAt(b, evidence(log), NOW + 2 * RESYNC - 1), true);
    assert.equal(readyAt(b, evidence(log), NOW + 2 * RESYNC), false);
  });

  test('a recent WireGuard handshake keeps a node alive whatever its annotation says', () => {
    const b = node('b', { ...up, lastSeen: 1 });
    const log = recordHeartbeats(new Map(), nodeHeartbeatValues([b]), NOW);
    const later = NOW + 600;
    assert.equal(readyAt(b, evidence(log, { handshakes: { b: later - 10 } }), later), true);
    assert.equal(readyAt(b, evidence(log, { handshakes: { b: later - 2 * RESYNC } }), later), false);
    assert.equal(readyAt(b, evidence(log, { handshakes: { c: later } }), later), false, "another node's handshake is no evidence for b");
  });

  test('time this agent was blind (its own heartbeat failing) counts against nobody', () => {
    const b = node('b', { ...up, lastSeen: 100 });
    const log = recordHeartbeats(new Map(), nodeHeartbeatValues([b]), NOW);
    // An outage of 3 × the window: this agent's last failed heartbeat write was at NOW + 180.
    const outageEnd = NOW + 180;
    assert.equal(readyAt(b, evidence(log, { trustedSince: outageEnd }), outageEnd + 2 * RESYNC - 1), true, 'a full window after the outage to hear from b');
    assert.equal(readyAt(b, evidence(log, { trustedSince: outageEnd }), outageEnd + 2 * RESYNC), false, 'then a node that really left is removed');
  });

  test('a node judged gone stays gone through blind time, and comes back with a new heartbeat or a handshake', () => {
    const b = node('b', { ...up, lastSeen: 100 });
    let log = recordHeartbeats(new Map(), nodeHeartbeatValues([b]), NOW);
    const gone = goneNodes([b], evidence(log), NOW + 2 * RESYNC, 2 * RESYNC);
    assert.deepEqual([...gone], ['b']);
    // A Node watch restarted (or an outage ended) later: trust alone does not revive b.
    const later = NOW + 10 * RESYNC;
    assert.equal(readyAt(b, evidence(log, { trustedSince: later, gone: [...gone] }), later), false);
    assert.deepEqual([...goneNodes([b], evidence(log, { trustedSince: later, gone: [...gone] }), later, 2 * RESYNC)], ['b']);
    assert.equal(readyAt(b, evidence(log, { trustedSince: later, gone: [...gone], handshakes: { b: later } }), later), true, 'a handshake');
    const again = node('b', { ...up, lastSeen: 200 });
    log = recordHeartbeats(log, nodeHeartbeatValues([again]), later);
    assert.equal(readyAt(again, evidence(log, { trustedSince: later, gone: [...gone] }), later), true, 'a new heartbeat');
  });

  test('a node never heard from is not made ready by handshakes or trust', () => {
    const b = node('b', { ...up, lastSeen: null });
    assert.equal(heardAt(b, evidence(new Map(), { handshakes: { b: NOW }, trustedSince: NOW }), NOW, WINDOW), undefined);
  });
});

describe('heartbeats as Leases: own location directly, other locations through their leaders', () => {
  const segment = (holder: string, members: string[], version: string, location = 'west') => ({
    name: `wirelane-segment-location-${location}`,
    version,
    holder,
    members,
    location,
  });

  test('a node Lease renewal is heard; a node with a Lease and no last-seen is heard too', () => {
    const b = node('b', { ...up, lastSeen: null });
    let log = recordHeartbeats(new Map(), nodeHeartbeatValues([b], new Map([['b', '10']])), NOW);
    log = recordHeartbeats(log, nodeHeartbeatValues([b], new Map([['b', '10']])), NOW + 20);
    assert.equal(log.get('b')?.heardAt, NOW, 'the same version is no heartbeat');
    log = recordHeartbeats(log, nodeHeartbeatValues([b], new Map([['b', '17']])), NOW + 30);
    assert.equal(log.get('b')?.heardAt, NOW + 30);
    assert.equal(readyAt(b, evidence(log), NOW + 30 + WINDOW - 1), true);
    assert.equal(readyAt(b, evidence(log), NOW + 30 + WINDOW), false, 'a Lease no longer renewed ages like a last-seen');
  });

  test("only other locations' segment Leases vouch: this location's nodes are judged by their own Leases", () => {
    const { vouches } = recordVouches(new Map(), [segment('a', ['a', 'b'], '5', 'east'), segment('c', ['c', 'd'], '6')], 'east', NOW, WINDOW);
    assert.deepEqual(vouches, [{ holder: 'c', members: ['c', 'd'], heardAt: NOW }]);
  });

  test("a location's leader is heard through its segment Lease; when renewals stop it ages first, its members a window later", () => {
    const [c, d] = [node('c', up), node('d', up)];
    let log = recordVouches(new Map(), [segment('c', ['c', 'd'], '6')], 'east', NOW, WINDOW).log;
    const renewed = recordVouches(log, [segment('c', ['c', 'd'], '9')], 'east', NOW + 15, WINDOW);
    log = renewed.log;
    const e = evidence(new Map(), { vouches: renewed.vouches });
    assert.equal(readyAt(c, e, NOW + 15 + WINDOW - 1), true);
    assert.equal(readyAt(c, e, NOW + 15 + WINDOW), false, 'the leader that stopped renewing');
    assert.equal(readyAt(d, e, NOW + 15 + WINDOW), true, 'a member, while a successor may take the Lease over');
    assert.equal(readyAt(d, e, NOW + 15 + 2 * WINDOW - 1), true);
    assert.equal(readyAt(d, e, NOW + 15 + 2 * WINDOW), false, 'a location gone as a whole goes');
    // The successor renews, vouching for d alone: d is heard again, c not through it.
    const takeover = recordVouches(log, [segment('d', ['d'], '12')], 'east', NOW + 15 + WINDOW + 5, WINDOW).vouches;
    const later = NOW + 15 + 2 * WINDOW;
    assert.equal(readyAt(d, evidence(new Map(), { vouches: takeover }), later), true);
    assert.equal(heardAt(c, evidence(new Map(), { vouches: takeover }), later, WINDOW), NOW + 15, 'c: as last heard through its own vouch');
    assert.equal(readyAt(c, evidence(new Map(), { vouches: takeover }), later), false);
  });

  // Seen under load: b's first reconcile, before it heard a, claimed east's Lease naming b alone.
  test("another member's claim does not revoke the leader it has not heard: the leader ages from its own last renewal", () => {
    const [a, b] = [node('a', up), node('b', up)];
    const log = recordVouches(new Map(), [segment('a', ['a', 'b'], '6')], 'east', NOW, WINDOW).log;
    const claimed = recordVouches(log, [segment('b', ['b'], '7')], 'east', NOW + 1, WINDOW);
    for (const at of [NOW + 1, NOW + WINDOW - 1]) assert.equal(readyAt(a, evidence(new Map(), { vouches: claimed.vouches }), at), true, `a at +${at - NOW} s`);
    assert.equal(readyAt(a, evidence(new Map(), { vouches: claimed.vouches }), NOW + WINDOW), false, 'a, never renewing again, ages a window after its last renewal');
    // a renews over b's claim: heard again; b's claim ages out like any vouch no longer renewed.
    const renewed = recordVouches(claimed.log, [segment('a', ['a', 'b'], '8')], 'east', NOW + 2, WINDOW);
    assert.equal(readyAt(a, evidence(new Map(), { vouches: renewed.vouches }), NOW + 2 + WINDOW - 1), true);
    assert.equal(readyAt(b, evidence(new Map(), { vouches: renewed.vouches }), NOW + 2 + 2 * WINDOW - 1), true, 'b, named by a');
    const pruned = recordVouches(renewed.log, [segment('a', ['a', 'b'], '9')], 'east', NOW + 1 + 2 * WINDOW, WINDOW).log;
    assert.deepEqual([...pruned.values()].map((v) => v.holder), ['a'], "b's claim forgotten once aged out");
    assert.equal(recordVouches(renewed.log, [], 'east', NOW + 3, WINDOW).log.size, 0, 'a Lease deleted takes its vouches along');
  });

  test('a holder that drops a member in its own renewal drops it at once', () => {
    const b = node('b', up);
    const log = recordVouches(new Map(), [segment('c', ['c', 'b'], '6')], 'east', NOW, WINDOW).log;
    const dropped = recordVouches(log, [segment('c', ['c'], '7')], 'east', NOW + 1, WINDOW).vouches;
    assert.equal(heardAt(b, evidence(new Map(), { vouches: dropped }), NOW + 1, WINDOW), undefined);
  });

  test('a member its leader no longer names is dropped at once (the leader judged it gone)', () => {
    const b = node('b', { ...up, lastSeen: 100 }); // its last-seen, heard once long ago
    const log = recordHeartbeats(new Map(), nodeHeartbeatValues([b]), NOW - 10 * WINDOW);
    const named = evidence(log, { vouches: [{ holder: 'c', members: ['c', 'b'], heardAt: NOW }] });
    const dropped = evidence(log, { vouches: [{ holder: 'c', members: ['c'], heardAt: NOW }] });
    assert.equal(readyAt(b, named, NOW), true);
    assert.equal(readyAt(b, dropped, NOW), false);
  });

  test('an outage (a failed renewal or a broken heartbeat watch) ages nobody heard through Leases either', () => {
    const [c, d] = [node('c', up), node('d', up)];
    const vouches = [{ holder: 'c', members: ['c', 'd'], heardAt: NOW }];
    const outageEnd = NOW + 10 * WINDOW;
    for (const n of [c, d]) {
      assert.equal(readyAt(n, evidence(new Map(), { vouches, trustedSince: outageEnd }), outageEnd + WINDOW - 1), true, `${n.name} after the outage`);
      assert.equal(readyAt(n, evidence(new Map(), { vouches, trustedSince: outageEnd }), outageEnd + WINDOW), false, `${n.name} a window later`);
    }
  });
  // Mid-upgrade: an agent that predates Leases renews no Lease; it writes last-seen on its own timer.
  test('a node of another location whose agent predates Leases is judged by its last-seen alone, vouches or not', () => {
    const at = (lastSeen: number) => node('w', { ...up, loc: 'west', lastSeen });
    const vouches = [{ holder: 'c', members: ['c'], heardAt: NOW }];
    let log = recordHeartbeats(new Map(), nodeHeartbeatValues([at(1)]), NOW);
    for (let t = RESYNC; t <= 5 * WINDOW; t += RESYNC) {
      log = recordHeartbeats(log, nodeHeartbeatValues([at(1 + t)]), NOW + t);
      assert.equal(readyAt(at(1 + t), evidence(log, { vouches }), NOW + t + RESYNC), true, `while its last-seen changes (${t} s)`);
    }
    const stopped = NOW + 5 * WINDOW;
    assert.equal(readyAt(at(1 + 5 * WINDOW), evidence(log, { vouches }), stopped + WINDOW - 1), true);
    assert.equal(readyAt(at(1 + 5 * WINDOW), evidence(log, { vouches }), stopped + WINDOW), false, 'gone a window after it stopped');
  });

  test("a member of a location whose leader predates Leases (no segment Lease) is heard through the last-seen it writes for that leader", () => {
    const b = (lastSeen: number) => node('b', { ...up, loc: 'west', lastSeen });
    // Half a resync period apart, as last-seen-timer.ts writes it while an older agent may read it.
    let log = recordHeartbeats(new Map(), nodeHeartbeatValues([b(1)]), NOW);
    log = recordHeartbeats(log, nodeHeartbeatValues([b(1 + RESYNC / 2)]), NOW + RESYNC / 2);
    assert.equal(readyAt(b(1 + RESYNC / 2), evidence(log), NOW + RESYNC / 2 + WINDOW - 1), true);
    assert.equal(readyAt(b(1 + RESYNC / 2), evidence(log), NOW + RESYNC / 2 + WINDOW), false, 'not once it stops writing');
  });
});
