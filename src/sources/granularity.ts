import { ParseError } from '../model/ip.js';
import type { Granularity } from '../model/mesh.js';

// Kilo's names `data-center` and `node` mean what wirelane calls `location` and `full`. A Map, not an
// object: looking `constructor` up in an object literal finds Object.prototype's.
const NAMES: ReadonlyMap<string, Granularity> = new Map<string, Granularity>([
  ['location', 'location'],
  ['data-center', 'location'],
  ['full', 'full'],
  ['node', 'full'],
  ['cross', 'cross'],
]);

export function parseGranularity(text: string): Granularity {
  const g = NAMES.get(text);
  if (g === undefined) throw new ParseError(`"${text}" is not a granularity (location, full, cross)`);
  return g;
}
