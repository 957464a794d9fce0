// What a source holds of an object. Services and EndpointSlices are decoded when they arrive and held
// as their identity (apiVersion, kind, name, namespace, resourceVersion: what keys, change detection
// and messages read) with the decoded form beside it. Their bodies were held besides the decoded
// forms: at 10,000 slices, 100,000 endpoints twice (docs/benchmarks.md, fifth round). Nothing but
// decodeServiceInput reads a Service's or a slice's body. Nodes and Peers are held trimmed
// (objects.ts): the mesh and the publisher read their annotations.
import type { EndpointSlice, Service } from '../services/input.js';
import { type Decoded, decodeObject } from './decode-cache.js';
import { decodeEndpointSlice } from './endpoint-slice.js';
import { type KubeObject, type ObjectMeta, isRecord, trimObject } from './objects.js';
import { decodeService } from './service.js';

const DECODED = Symbol('decoded');

/**
 * The decoded form under a symbol: JSON leaves it out, and isDeepStrictEqual compares it (a cluster
 * file's unchanged object is found by comparing what it holds).
 */
interface HeldObject extends KubeObject {
  readonly [DECODED]: Decoded<Service> | Decoded<EndpointSlice>;
}

/** `kind`: the source's kind for the object (undefined: not one the agent reads, kept as it came). */
export function holdObject(kind: string | undefined, object: KubeObject): KubeObject {
  const trimmed = trimObject(kind, object);
  if (kind !== 'Service' && kind !== 'EndpointSlice') return trimmed;
  // Junk where the identity should be stays as it came: the decoder reports it, a cluster file refuses it.
  if (!isRecord(trimmed.metadata)) return trimmed;
  // As typed, not as narrowed: a value of another type is copied as it came (the decoder reported it).
  const { name, namespace, resourceVersion } = trimmed.metadata as ObjectMeta;
  // Plain literals, every key always present (undefined where absent; JSON leaves those out): built
  // from conditional spreads, nearly every held object had a hidden class of its own (~7 MiB).
  const held: HeldObject = {
    apiVersion: interned(trimmed.apiVersion),
    kind: interned(trimmed.kind),
    metadata: { name, namespace, resourceVersion },
    [DECODED]: kind === 'Service' ? decodeObject(trimmed, decodeService) : decodeObject(trimmed, decodeEndpointSlice),
  };
  return held;
}

// JSON.parse gives every object its own copy of these (0.7 MiB at 20,000 objects).
const COMMON = new Map(['v1', 'discovery.k8s.io/v1', 'Service', 'EndpointSlice'].map((v) => [v, v]));

function interned(value: string | undefined): string | undefined {
  return value === undefined ? undefined : (COMMON.get(value) ?? value);
}

/** A held Service's or EndpointSlice's decoded form; undefined for an object as it came (a CLI's read). */
export function heldDecoded(object: KubeObject): Decoded<Service> | Decoded<EndpointSlice> | undefined {
  return (object as Partial<HeldObject>)[DECODED];
}
