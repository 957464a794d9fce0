// Services and EndpointSlices from a source, decoded leniently: a malformed object is left out and
// reported, every other one is used (the agent and the `services` command alike).
import type { EndpointSlice, Service } from '../services/input.js';
import { DecodeCache } from './decode-cache.js';
import { decodeEndpointSlice } from './endpoint-slice.js';
import { heldDecoded } from './held-object.js';
import { type LocatedProblem, locatedProblem } from './problem.js';
import { decodeService } from './service.js';
import type { SourceObject } from './source.js';

export interface DecodedServiceInput {
  readonly services: readonly Service[];
  readonly slices: readonly EndpointSlice[];
  readonly problems: readonly LocatedProblem[];
}

/** What a caller decoding again and again (the agent at every resync) keeps between decodes. */
export class ServiceInputCache {
  readonly services = new DecodeCache<Service>();
  readonly slices = new DecodeCache<EndpointSlice>();
}

/** `cache`: objects decoded before are not decoded again (default: none are kept). */
export function decodeServiceInput(objects: Iterable<SourceObject>, cache = new ServiceInputCache()): DecodedServiceInput {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  const problems: LocatedProblem[] = [];
  for (const o of objects) {
    const { kind, object } = o;
    // A source's objects come decoded (held-object.ts); a CLI's read of a file is decoded here.
    const decoded =
      kind === 'Service'
        ? (heldDecoded(object) ?? cache.services.get(object, decodeService))
        : kind === 'EndpointSlice'
          ? (heldDecoded(object) ?? cache.slices.get(object, decodeEndpointSlice))
          : undefined;
    if (decoded === undefined) continue;
    // The place only for a problem: a file object spells it out when asked (cluster-file.ts).
    for (const p of decoded.problems) problems.push(locatedProblem(p, o.where));
    if (decoded.value === undefined) continue;
    if (kind === 'Service') services.push(decoded.value as Service);
    else slices.push(decoded.value as EndpointSlice);
  }
  return { services, slices, problems };
}
