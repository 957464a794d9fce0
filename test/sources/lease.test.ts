import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeLease, locationLabelValue, microTime, nodeLease, nodeLeaseName, nodeLeaseSelector, segmentLease, segmentLeaseName, withLeaseLastSeen,
} from '../../src/sources/lease.js';
import { NOW, node } from '../mesh/builder.js';

const write = { namespace: 'wirelane', holder: 'a', location: 'east', renewMs: 1_700_000_000_000, durationSeconds: 60 };

describe('heartbeat Lease names and labels', () => {
  test('a location is its own label value when it can be one, else a digest that no location spells', () => {
    const cases: [string, RegExp][] = [
      ['east', /^east$/],
      ['', /^$/],
      ['eu-west-1.a', /^eu-west-1\.a$/],
      ['Zürich', /^h\.[0-9a-f]{40}$/],
      ['a b', /^h\.[0-9a-f]{40}$/],
      ['-edge', /^h\.[0-9a-f]{40}$/],
      ['x'.repeat(64), /^h\.[0-9a-f]{40}$/],
      ['h.east', /^h\.[0-9a-f]{40}$/],
    ];
    for (const [location, want] of cases) assert.match(locationLabelValue(location), want, JSON.stringify(location));
    assert.notEqual(locationLabelValue('a b'), locationLabelValue('a  b'));
    assert.equal(nodeLeaseSelector('east'), 'wirelane.io/lease=node,wirelane.io/location=east');
  });

  test('names are DNS subdomains; segment keys that differ only in punctuation keep apart', () => {
    assert.equal(nodeLeaseName('node-1.example'), 'wirelane-node-node-1.example');
    assert.ok(nodeLeaseName('n'.repeat(253)).length <= 253);
    // Each dot-separated label of a subdomain starts and ends alphanumeric: `dc1.` must not make `.-`.
    for (const key of ['location:east', 'node:a', 'location:Zürich', 'location:a b', 'location:dc1.', 'location:a._b', 'node:n-1.example']) {
      assert.match(segmentLeaseName(key), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, key);
    }
    assert.notEqual(segmentLeaseName('location:a b'), segmentLeaseName('location:a_b'));
  });

  test('MicroTime has six fractional digits', () => {
    assert.equal(microTime(Date.UTC(2026, 11, 2, 17, 0, 0, 123)), '2026-12-02T17:00:00.123000Z');
  });
});

describe('building and reading heartbeat Leases', () => {
  test('a node Lease round-trips, carrying the stored version as its precondition', () => {
    const built = nodeLease(write, undefined);
    assert.equal(built.metadata?.resourceVersion, undefined, 'a first write is a create');
    const stored = { ...built, metadata: { ...built.metadata, resourceVersion: '42' } };
    assert.deepEqual(decodeLease(stored), { kind: 'node', name: 'wirelane-node-a', holder: 'a', version: '42', location: 'east', renewedAt: 1_700_000_000, members: [] });
    assert.equal(nodeLease({ ...write, renewMs: write.renewMs + 1000 }, stored).metadata?.resourceVersion, '42');
  });

  test('a segment Lease names its members sorted, and counts a change of holder as a transition', () => {
    const first = { ...segmentLease(write, 'location:east', ['b', 'a'], undefined), metadata: { resourceVersion: '7', ...segmentLease(write, 'location:east', ['b', 'a'], undefined).metadata } };
    const decoded = decodeLease(first);
    assert.ok(decoded && !('problem' in decoded));
    assert.deepEqual([decoded.kind, decoded.segment, decoded.members, decoded.holder], ['segment', 'location:east', ['a', 'b'], 'a']);
    const renewed = segmentLease({ ...write, renewMs: write.renewMs + 5000 }, 'location:east', ['a', 'b'], first);
    const taken = segmentLease({ ...write, holder: 'b', renewMs: write.renewMs + 9000 }, 'location:east', ['b'], first);
    const spec = (o: { spec?: unknown }) => o.spec as { acquireTime: string; leaseTransitions: number };
    assert.deepEqual([spec(renewed).leaseTransitions, spec(renewed).acquireTime], [0, microTime(write.renewMs)], 'the same holder keeps its acquire time');
    assert.deepEqual([spec(taken).leaseTransitions, spec(taken).acquireTime], [1, microTime(write.renewMs + 9000)]);
  });

  test('a Lease without our label is not ours; a malformed one of ours is a problem naming it', () => {
    assert.equal(decodeLease({ metadata: { name: 'kube-node-lease-x', resourceVersion: '1' }, spec: { holderIdentity: 'x' } }), undefined);
    const ours = (labels: Record<string, string>, spec: unknown, annotations: Record<string, string> = {}) =>
      decodeLease({ metadata: { name: 'l', resourceVersion: '1', labels, annotations }, spec });
    assert.deepEqual(ours({ 'wirelane.io/lease': 'leader' }, { holderIdentity: 'a' }), { problem: 'Lease "l": label wirelane.io/lease: "leader" is neither node nor segment' });
    assert.deepEqual(ours({ 'wirelane.io/lease': 'node' }, {}), { problem: 'Lease "l": no spec.holderIdentity' });
    assert.deepEqual(ours({ 'wirelane.io/lease': 'segment' }, { holderIdentity: 'a' }), { problem: 'Lease "l": no annotation wirelane.io/segment' });
  });
});

test("a one-off read takes a node's latest heartbeat from the Leases: its own, or its leader's naming it", () => {
  const lease = (kind: 'node' | 'segment', holder: string, renewedAt: number, members: string[] = []) => ({
    kind, name: holder, holder, version: '1', location: 'east', renewedAt, members,
  });
  const nodes = [node('a', { lastSeen: NOW - 500 }), node('b', { lastSeen: NOW - 500 }), node('c', { lastSeen: null }), node('d', { lastSeen: NOW })];
  const seen = withLeaseLastSeen(nodes, [lease('node', 'a', NOW - 10), lease('segment', 'a', NOW - 5, ['a', 'b']), lease('node', 'd', NOW - 99)]);
  assert.deepEqual(seen.map((n) => [n.name, n.lastSeen]), [['a', NOW - 5], ['b', NOW - 5], ['c', undefined], ['d', NOW]]);
});
