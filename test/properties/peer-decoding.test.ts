// Properties of Peer decoding (src/sources/peer.ts) and of the mesh loop over Peers (decodeMeshInput).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMeshInput } from '../../src/sources/mesh-input.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { decodePeer } from '../../src/sources/peer.js';
import type { SourceObject } from '../../src/sources/source.js';
import { assertMeshInputAccounted, rejectionOf } from './accounting.js';
import {
  type FieldJunk,
  kubeShaped,
  namesField,
  notACidr,
  notAKey,
  notAnEndpoint,
  notAnIntegerIn,
  otherThan,
  withOneBadField,
  withOneFieldMutated,
} from './junk.js';
import { NODE_DECODE_OPTIONS as OPTS, nodeObject, peerObject } from './objects.js';
import { fc } from './setup.js';
import { assertWellFormedPeer } from './well-formed.js';

// A bad Peer field rejects the whole Peer, naming the field; anything inside the endpoint is named
// as the endpoint, which is parsed as one value.
const PEER_FIELDS: readonly FieldJunk[] = [
  { pattern: 'metadata.name', junk: fc.oneof(fc.constant(''), otherThan('string')) },
  { pattern: 'spec', junk: otherThan('record') },
  { pattern: 'spec.allowedIPs', junk: fc.oneof(fc.constant([]), otherThan('list')) },
  { pattern: 'spec.allowedIPs.*', junk: fc.oneof(notACidr, otherThan('string')) },
  { pattern: 'spec.publicKey', junk: fc.oneof(notAKey, otherThan('string')) },
  { pattern: 'spec.persistentKeepalive', junk: notAnIntegerIn(0, 65535) },
  { pattern: 'spec.presharedKey', junk: fc.oneof(notAKey.filter((k) => k !== ''), otherThan('string', 'null')) },
  { pattern: 'spec.endpoint', junk: fc.oneof(notAnEndpoint, otherThan('string', 'null')) },
  { pattern: 'spec.endpoint.dnsOrIP', junk: otherThan('record'), alsoReportedAs: () => ['spec.endpoint'] },
  {
    pattern: 'spec.endpoint.dnsOrIP.ip',
    junk: fc.oneof(fc.constant(''), otherThan('string', 'null')),
    alsoReportedAs: () => ['spec.endpoint'],
  },
  {
    pattern: 'spec.endpoint.dnsOrIP.dns',
    junk: fc.oneof(fc.constantFrom('', '-a', 'a b', 'a_b.example'), otherThan('string', 'null')),
    alsoReportedAs: () => ['spec.endpoint'],
  },
  { pattern: 'spec.endpoint.port', junk: notAnIntegerIn(1, 65535).filter((p) => typeof p !== 'string'), alsoReportedAs: () => ['spec.endpoint'] },
];

test('a Peer built from valid values decodes to what it was built from', () => {
  fc.assert(
    fc.property(peerObject, (object) => {
      const peer = decodePeer(object);
      assertWellFormedPeer(peer);
      const spec = object.spec as { allowedIPs: string[]; publicKey: string; presharedKey?: string; persistentKeepalive?: number; endpoint?: unknown };
      assert.equal(peer.name, object.metadata.name);
      assert.equal(peer.allowedIPs.length, spec.allowedIPs.length);
      assert.equal(peer.publicKey, spec.publicKey);
      assert.equal(peer.presharedKey, spec.presharedKey);
      assert.equal(peer.persistentKeepalive, spec.persistentKeepalive ?? 0);
      assert.equal(peer.endpoint === undefined, spec.endpoint === undefined);
    }),
  );
});

test('a bad value in a Peer is reported naming the field, and rejects that Peer', () => {
  fc.assert(
    fc.property(withOneBadField(peerObject, PEER_FIELDS), (bad) => {
      const problem = rejectionOf(() => decodePeer(bad.object as KubeObject));
      assert.ok(problem !== undefined, `Peer: a bad ${bad.field} was accepted`);
      assert.equal(problem.kind, 'Peer');
      assert.ok(namesField(problem.field, bad), `${bad.field} reported as ${problem.field}`);
    }),
  );
});

// "Valid" here is every Peer that decodes on its own: a mutation may leave a Peer valid.
test('junk Peers beside valid ones, in any order, leave the valid ones decoded as before', () => {
  const junk = fc.oneof(withOneBadField(peerObject, PEER_FIELDS).map((b) => b.object), withOneFieldMutated(peerObject), kubeShaped);
  const entry = fc.oneof(
    peerObject.map((object): SourceObject => ({ kind: 'Peer', object })),
    junk.map((object): SourceObject => ({ kind: 'Peer', object: object as KubeObject })),
    nodeObject.map((object): SourceObject => ({ kind: 'Node', object })),
  );
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 8 }), (entries) => {
      const sources = entries.map((e, i) => ({ ...e, where: `document ${i + 1}` }));
      const decoded = decodeMeshInput(sources, OPTS);
      assertMeshInputAccounted(sources, decoded);
      const validPeers = sources.filter((s) => s.kind === 'Peer' && rejectionOf(() => decodePeer(s.object)) === undefined);
      assert.deepEqual(decoded.peers, decodeMeshInput(validPeers, OPTS).peers);
      assert.deepEqual(decoded.nodes, decodeMeshInput(sources.filter((s) => s.kind === 'Node'), OPTS).nodes);
    }),
  );
});
