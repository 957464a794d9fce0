// Services and EndpointSlices from a source, decoded leniently: a malformed object is left out and
// reported, every other one is used (the agent's counterpart of the strict `services` command).
import type { EndpointSlice, Service } from '../services/input.js';
import { decodeEndpointSlice } from './endpoint-slice.js';
import { InvalidObjectError, type Problem } from './problem.js';
import { decodeService } from './service.js';
import type { SourceObject } from './source.js';

export interface DecodedServiceInput {
  readonly services: readonly Service[];
  readonly slices: readonly EndpointSlice[];
  readonly problems: readonly Problem[];
}

export function decodeServiceInput(objects: Iterable<SourceObject>): DecodedServiceInput {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  const problems: Problem[] = [];
  for (const { kind, object } of objects) {
    try {
      if (kind === 'Service') services.push(decodeService(object));
      else if (kind === 'EndpointSlice') {
        const slice = decodeEndpointSlice(object, (problem) => problems.push(problem));
        if (slice !== undefined) slices.push(slice);
      }
    } catch (err) {
      if (!(err instanceof InvalidObjectError)) throw err;
      problems.push(err.problem);
    }
  }
  return { services, slices, problems };
}
