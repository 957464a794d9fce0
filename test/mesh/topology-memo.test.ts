import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { topologyToJSON } from '../../src/mesh/json.js';
import { computeTopology } from '../../src/mesh/topology.js';
import { TopologyMemo } from '../../src/mesh/topology-memo.js';
import type { MeshInput, MeshOptions, Topology } from '../../src/mesh/types.js';
import { parseEndpoint } from '../../src/model/endpoint.js';
import type { MeshNode } from '../../src/model/mesh.js';
import { NOW, member, options, peer } from './builder.js';

// resyncPeriodSeconds 30 (builder): a node is ready while seen less than 60 s ago.
const WINDOW = 60;
const decoded = [member('a', 1), member('a', 2), member('b', 1), member('c', 1)];
const peers = [peer('p', { ips: ['10.5.0.1/32'] })];

/** What the agent hands the core at `now`: the decoded nodes (the same objects) with when each was last heard. */
function inputAt(now: number, heard: Record<string, number> = {}): MeshInput {
  return { nodes: decoded.map((n): MeshNode => ({ ...n, lastSeen: heard[n.name] ?? now })), peers };
}

const at = (now: number, over: Partial<MeshOptions> = {}): MeshOptions => options('a1', { now, ...over });
const names = (t: Topology): string[] => t.segments.flatMap((s) => s.nodes.map((n) => n.name));
/** A topology as its readers see it (JSON leaves out lastSeen and now, which a reused one keeps from its computation). */
const view = (t: Topology): string => JSON.stringify(topologyToJSON(t));

describe('topology memo', () => {
  test('a resync with the same objects and the same verdicts hands out the same topology', () => {
    const memo = new TopologyMemo();
    const first = memo.compute(inputAt(NOW), at(NOW));
    const again = memo.compute(inputAt(NOW + 20), at(NOW + 20));
    assert.equal(again, first);
    assert.equal(view(again), view(computeTopology(inputAt(NOW + 20), at(NOW + 20))));
  });

  test('a node whose heartbeat ages out between two resyncs with identical objects is dropped', () => {
    const memo = new TopologyMemo();
    // b1 was last heard at NOW and nothing changes after that: the same objects, the same lastSeen.
    const input = inputAt(NOW);
    const first = memo.compute(input, at(NOW));
    assert.deepEqual(names(first), ['a1', 'a2', 'b1', 'c1']);
    const heard = { a1: NOW + WINDOW, a2: NOW + WINDOW, b1: NOW, c1: NOW + WINDOW };
    const later = memo.compute(inputAt(NOW + WINDOW, heard), at(NOW + WINDOW));
    assert.notEqual(later, first);
    assert.deepEqual(names(later), ['a1', 'a2', 'c1']);
    assert.equal(view(later), view(computeTopology(inputAt(NOW + WINDOW, heard), at(NOW + WINDOW))));
  });

  test('the same input array handed in again at a later now drops the nodes it no longer finds fresh', () => {
    const memo = new TopologyMemo();
    const input: MeshInput = { nodes: decoded.map((n) => (n.name === 'a1' ? { ...n, lastSeen: NOW + WINDOW } : { ...n, lastSeen: NOW })), peers };
    assert.deepEqual(names(memo.compute(input, at(NOW))), ['a1', 'a2', 'b1', 'c1']);
    assert.deepEqual(names(memo.compute(input, at(NOW + WINDOW))), ['a1']);
  });

  test('a node heard again after it aged out comes back', () => {
    const memo = new TopologyMemo();
    memo.compute(inputAt(NOW), at(NOW));
    const gone = memo.compute(inputAt(NOW + WINDOW, { b1: NOW }), at(NOW + WINDOW));
    assert.deepEqual(names(gone), ['a1', 'a2', 'c1']);
    const back = memo.compute(inputAt(NOW + WINDOW + 5), at(NOW + WINDOW + 5));
    assert.deepEqual(names(back), ['a1', 'a2', 'b1', 'c1']);
  });

  test('a heartbeat that moves but keeps its node fresh changes nothing', () => {
    const memo = new TopologyMemo();
    const first = memo.compute(inputAt(NOW), at(NOW));
    assert.equal(memo.compute(inputAt(NOW + 50, { b1: NOW + 1 }), at(NOW + 50)), first);
  });

  const changes: readonly { what: string; input: () => MeshInput; opts?: MeshOptions }[] = [
    { what: 'a node changed (a new object from the decoder)', input: () => ({ nodes: inputAt(NOW).nodes.map((n) => (n.name === 'b1' ? { ...n, endpoint: parseEndpoint('10.1.2.9:51820') } : n)), peers }) },
    { what: 'a node added', input: () => ({ nodes: [...inputAt(NOW).nodes, { ...member('d', 1), lastSeen: NOW }], peers }) },
    { what: 'a node removed', input: () => ({ nodes: inputAt(NOW).nodes.slice(0, 3), peers }) },
    { what: 'a field added to a node', input: () => ({ nodes: inputAt(NOW).nodes.map((n) => (n.name === 'b1' ? { ...n, tunnelsBroken: true } : n)), peers }) },
    { what: 'a Peer added', input: () => ({ nodes: inputAt(NOW).nodes, peers: [...peers, peer('q', { ips: ['10.5.0.2/32'] })] }) },
    { what: 'an option changed', input: () => inputAt(NOW), opts: at(NOW, { tunnelDevice: 'wirelane.vxlan' }) },
    { what: 'the same value in a new object (an equal endpoint parsed again)', input: () => ({ nodes: inputAt(NOW).nodes.map((n) => (n.name === 'b1' ? { ...n, endpoint: parseEndpoint('10.1.2.1:51820') } : n)), peers }) },
  ];
  for (const change of changes) {
    test(`${change.what}: computed again`, () => {
      const memo = new TopologyMemo();
      const first = memo.compute(inputAt(NOW), at(NOW));
      const input = change.input();
      const opts = change.opts ?? at(NOW);
      const next = memo.compute(input, opts);
      assert.notEqual(next, first);
      assert.equal(view(next), view(computeTopology(input, opts)));
    });
  }

  test('an input the core rejects throws every time, and the last good topology still serves its own inputs', () => {
    const memo = new TopologyMemo();
    const first = memo.compute(inputAt(NOW), at(NOW));
    assert.throws(() => memo.compute(inputAt(NOW), at(NOW, { hostname: 'nobody' })), /not in the cluster/);
    assert.throws(() => memo.compute(inputAt(NOW), at(NOW, { hostname: 'nobody' })), /not in the cluster/);
    assert.equal(memo.compute(inputAt(NOW + 1), at(NOW + 1)), first);
  });
});
