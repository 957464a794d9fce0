// "Every object is accounted for": after a decoding loop, each input object is decoded, or reported
// by exactly the problems that name its kind, object and a field; an FQDN EndpointSlice is the one
// object ignored by design. Problems name the object as the decoders do: `name` for Nodes and Peers,
// `namespace/name` for namespaced kinds.
import assert from 'node:assert/strict';
import type { EndpointSlice, Service } from '../../src/services/input.js';
import { decodeEndpointSlice } from '../../src/sources/endpoint-slice.js';
import type { DecodedMeshInput } from '../../src/sources/mesh-input.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { InvalidObjectError, type LocatedProblem, type Problem, locatedProblem } from '../../src/sources/problem.js';
import type { DecodedServiceInput } from '../../src/sources/service-input.js';
import { decodeService } from '../../src/sources/service.js';
import type { SourceObject } from '../../src/sources/source.js';
import { assertWellFormedNode, assertWellFormedPeer, assertWellFormedService, assertWellFormedSlice } from './well-formed.js';

function metadataOf(object: KubeObject): Record<string, unknown> {
  const m: unknown = object.metadata;
  return typeof m === 'object' && m !== null && !Array.isArray(m) ? (m as Record<string, unknown>) : {};
}

/** The name an object goes by, '' when it has none that is a string. */
function nameOf(object: KubeObject): string {
  const name = metadataOf(object)['name'];
  return typeof name === 'string' ? name : '';
}

/** What a problem about `object` must call it. */
function identityOf(kind: SourceObject['kind'], object: KubeObject): string {
  if (kind === 'Node' || kind === 'Peer') return nameOf(object);
  const ns = metadataOf(object)['namespace'];
  return `${typeof ns === 'string' && ns !== '' ? ns : 'default'}/${nameOf(object)}`;
}

function assertNames(p: Problem, kind: SourceObject['kind'], object: KubeObject, where: string): void {
  assert.equal(p.kind, kind, `${where}: problem of kind ${p.kind}`);
  assert.equal(p.object, identityOf(kind, object), `${where}: problem names ${p.object}`);
  assert.ok(typeof p.field === 'string' && p.field !== '', `${where}: problem names no field`);
  assert.ok(typeof p.message === 'string' && p.message !== '', `${where}: problem says nothing`);
}

/**
 * The mesh loop: every source needs a distinct `where`. A Node with a name is decoded (its bad
 * annotations reported beside it); a Node without one is one problem. A Peer is decoded or one problem.
 */
export function assertMeshInputAccounted(sources: readonly SourceObject[], decoded: DecodedMeshInput): void {
  const wheres = new Set(sources.map((s) => s.where));
  for (const p of decoded.problems) assert.ok(p.where !== undefined && wheres.has(p.where), `a problem from nowhere: ${p.where}`);
  const decodedNodes: string[] = [];
  const decodedPeers: string[] = [];
  for (const { kind, object, where = '' } of sources) {
    const problems = decoded.problems.filter((p) => p.where === where);
    problems.forEach((p) => assertNames(p, kind, object, where));
    if (kind === 'Node') {
      if (nameOf(object) !== '') decodedNodes.push(nameOf(object));
      else assert.deepEqual(problems.map((p) => p.field), ['metadata.name'], `${where}: a nameless Node`);
    } else if (kind === 'Peer') {
      assert.ok(problems.length <= 1, `${where}: a Peer reported ${problems.length} times`);
      if (problems.length === 0) decodedPeers.push(nameOf(object));
    } else {
      assert.deepEqual(problems, [], `${where}: the mesh loop reported a ${kind}`);
    }
  }
  assert.deepEqual(decoded.nodes.map((n) => n.name), decodedNodes, 'the decoded Nodes');
  assert.deepEqual(decoded.peers.map((p) => p.name), decodedPeers, 'the decoded Peers');
  decoded.nodes.forEach(assertWellFormedNode);
  decoded.peers.forEach(assertWellFormedPeer);
}

/** The problem `decode` rejects its object with, undefined when it decodes; any other error escapes. */
export function rejectionOf(decode: () => unknown): Problem | undefined {
  try {
    decode();
    return undefined;
  } catch (err) {
    if (err instanceof InvalidObjectError) return err.problem;
    throw err;
  }
}

type Outcome =
  | { readonly kind: 'service'; readonly service: Service }
  | { readonly kind: 'slice'; readonly slice: EndpointSlice }
  | { readonly kind: 'ignored' }
  | { readonly kind: 'problem'; readonly problem: Problem };

/** One object decoded on its own; anything but InvalidObjectError escapes, as it would the loop. */
export function decodeAlone({ kind, object }: SourceObject): Outcome {
  try {
    if (kind === 'Service') return { kind: 'service', service: decodeService(object) };
    if (kind === 'EndpointSlice') {
      const slice = decodeEndpointSlice(object);
      return slice === undefined ? { kind: 'ignored' } : { kind: 'slice', slice };
    }
    return { kind: 'ignored' };
  } catch (err) {
    if (err instanceof InvalidObjectError) return { kind: 'problem', problem: err.problem };
    throw err;
  }
}

/**
 * The service loop: its result is each object's own outcome, in order. A rejected object is one
 * problem naming it (and where it stands, in a file); only an FQDN slice (or a kind the loop does
 * not read) is left out silently.
 */
export function assertServiceInputAccounted(sources: readonly SourceObject[], decoded: DecodedServiceInput): void {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  const problems: LocatedProblem[] = [];
  sources.forEach((source, i) => {
    const outcome = decodeAlone(source);
    if (outcome.kind === 'service') services.push(outcome.service);
    else if (outcome.kind === 'slice') slices.push(outcome.slice);
    else if (outcome.kind === 'problem') {
      assertNames(outcome.problem, source.kind, source.object, `object ${i}`);
      problems.push(locatedProblem(outcome.problem, source.where));
    } else if (source.kind === 'EndpointSlice') {
      assert.equal((source.object as Record<string, unknown>)['addressType'], 'FQDN', `object ${i}: a slice left out silently`);
    }
  });
  assert.deepEqual(decoded.services, services, 'the decoded Services');
  assert.deepEqual(decoded.slices, slices, 'the decoded EndpointSlices');
  assert.deepEqual(decoded.problems, problems, 'the problems');
  decoded.services.forEach(assertWellFormedService);
  decoded.slices.forEach(assertWellFormedSlice);
}
