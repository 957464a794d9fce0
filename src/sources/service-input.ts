// Services and EndpointSlices from a source, decoded leniently: a malformed object is left out and
// reported, every other one is used (the agent and the `services` command alike).
import type { EndpointSlice, Service } from '../services/input.js';
import { decodeEndpointSlice } from './endpoint-slice.js';
import { InvalidObjectError, type LocatedProblem, locatedProblem } from './problem.js';
import { decodeService } from './service.js';
import type { SourceObject } from './source.js';

export interface DecodedServiceInput {
  readonly services: readonly Service[];
  readonly slices: readonly EndpointSlice[];
  readonly problems: readonly LocatedProblem[];
}

export function decodeServiceInput(objects: Iterable<SourceObject>): DecodedServiceInput {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  const problems: LocatedProblem[] = [];
  for (const { kind, object, where } of objects) {
    try {
      if (kind === 'Service') services.push(decodeService(object));
      else if (kind === 'EndpointSlice') {
        const slice = decodeEndpointSlice(object, (problem) => problems.push(problem));
        if (slice !== undefined) slices.push(slice);
      }
    } catch (err) {
      if (!(err instanceof InvalidObjectError)) throw err;
      problems.push(locatedProblem(err.problem, where));
    }
  }
  return { services, slices, problems };
}
