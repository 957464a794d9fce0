import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Heartbeat, goneNodes, heardAt, recordHeartbeats } from '../../src/mesh/liveness.js';
import { isNodeReady } from '../../src/mesh/readiness.js';
import { NOW, keyOf, node } from './builder.js';

const RESYNC = 30;
/** Everything a node needs to be ready but a heartbeat. */
const up = { ep: '10.1.0.2:51820', pods: ['10.2.2.0/24'] };
const evidence = (heartbeats: Map<string, Heartbeat>, opts: { handshakes?: Record<string, number>; trustedSince?: number; gone?: string[] } = {}) => ({
  heartbeats,
  handshakes: new Map(Object.entries(opts.handshakes ?? {}).map(([name, t]) => [keyOf(name) as string, t])),
  trustedSince: opts.trustedSince ?? 0,
  gone: new Set(opts.gone ?? []),
});
/** Is `name` ready at `now` when judged by what this agent heard, as the mesh reconciler overlays it? */
const readyAt = (n: ReturnType<typeof node>, e: ReturnType<typeof evidence>, now: number) => isNodeReady({ ...n, lastSeen: heardAt(n, e) }, now, RESYNC);

describe('heartbeats judged by this agent clock', () => {
  test('a first-seen value is heard now, whatever clock wrote it', () => {
    for (const written of [NOW - 86_400, NOW, NOW + 86_400]) {
      const log = recordHeartbeats(new Map(), [node('b', { ...up, lastSeen: written })], NOW);
      assert.deepEqual(log.get('b'), { value: written, heardAt: NOW });
    }
  });

  test('an unchanged value keeps its time; a changed one is heard anew', () => {
    let log = recordHeartbeats(new Map(), [node('b', { ...up, lastSeen: 100 })], NOW);
    log = recordHeartbeats(log, [node('b', { ...up, lastSeen: 100 })], NOW + 40);
    assert.equal(log.get('b')?.heardAt, NOW);
    log = recordHeartbeats(log, [node('b', { ...up, lastSeen: 115 })], NOW + 50);
    assert.equal(log.get('b')?.heardAt, NOW + 50);
  });

  test('nodes that are gone or have no last-seen drop out of the log', () => {
    let log = recordHeartbeats(new Map(), [node('b'), node('c')], NOW);
    log = recordHeartbeats(log, [node('b', { ...up, lastSeen: null })], NOW + 1);
    assert.deepEqual([...log.keys()], []);
  });

  test('a node whose clock runs an hour behind stays ready while its heartbeat changes', () => {
    const skew = -3600;
    let log = new Map<string, Heartbeat>();
    for (let t = 0; t <= 300; t += 15) {
      const b = node('b', { ...up, lastSeen: NOW + t + skew });
      log = recordHeartbeats(log, [b], NOW + t);
      assert.equal(readyAt(b, evidence(log), NOW + t), true, `at +${t} s`);
    }
  });

  test('a node whose heartbeat stops is not ready 2 × resync after this agent last saw it change', () => {
    const b = node('b', { ...up, lastSeen: NOW + 999 }); // a clock far ahead changes nothing
    const log = recordHeartbeats(new Map(), [b], NOW);
    assert.equal(readyAt(b, evidence(log), NOW + 2 * RESYNC - 1), true);
    assert.equal(readyAt(b, evidence(log), NOW + 2 * RESYNC), false);
  });

  test('a recent WireGuard handshake keeps a node alive whatever its annotation says', () => {
    const b = node('b', { ...up, lastSeen: 1 });
    const log = recordHeartbeats(new Map(), [b], NOW);
    const later = NOW + 600;
    assert.equal(readyAt(b, evidence(log, { handshakes: { b: later - 10 } }), later), true);
    assert.equal(readyAt(b, evidence(log, { handshakes: { b: later - 2 * RESYNC } }), later), false);
    assert.equal(readyAt(b, evidence(log, { handshakes: { c: later } }), later), false, "another node's handshake is no evidence for b");
  });

  test('time this agent was blind (its own heartbeat failing) counts against nobody', () => {
    const b = node('b', { ...up, lastSeen: 100 });
    const log = recordHeartbeats(new Map(), [b], NOW);
    // An outage of 3 × the window: this agent's last failed heartbeat write was at NOW + 180.
    const outageEnd = NOW + 180;
    assert.equal(readyAt(b, evidence(log, { trustedSince: outageEnd }), outageEnd + 2 * RESYNC - 1), true, 'a full window after the outage to hear from b');
    assert.equal(readyAt(b, evidence(log, { trustedSince: outageEnd }), outageEnd + 2 * RESYNC), false, 'then a node that really left is removed');
  });

  test('a node judged gone stays gone through blind time, and comes back with a new heartbeat or a handshake', () => {
    const b = node('b', { ...up, lastSeen: 100 });
    let log = recordHeartbeats(new Map(), [b], NOW);
    const gone = goneNodes([b], evidence(log), NOW + 2 * RESYNC, 2 * RESYNC);
    assert.deepEqual([...gone], ['b']);
    // A Node watch restarted (or an outage ended) later: trust alone does not revive b.
    const later = NOW + 10 * RESYNC;
    assert.equal(readyAt(b, evidence(log, { trustedSince: later, gone: [...gone] }), later), false);
    assert.deepEqual([...goneNodes([b], evidence(log, { trustedSince: later, gone: [...gone] }), later, 2 * RESYNC)], ['b']);
    assert.equal(readyAt(b, evidence(log, { trustedSince: later, gone: [...gone], handshakes: { b: later } }), later), true, 'a handshake');
    const again = node('b', { ...up, lastSeen: 200 });
    log = recordHeartbeats(log, [again], later);
    assert.equal(readyAt(again, evidence(log, { trustedSince: later, gone: [...gone] }), later), true, 'a new heartbeat');
  });

  test('a node never heard from is not made ready by handshakes or trust', () => {
    const b = node('b', { ...up, lastSeen: null });
    assert.equal(heardAt(b, evidence(new Map(), { handshakes: { b: NOW }, trustedSince: NOW })), undefined);
  });
});
