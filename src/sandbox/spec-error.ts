// The one error of a sandbox spec that cannot be built (what is wrong, and where), and the parse
// of an address field that throws it.
import { parseCidr, ParseError, type Cidr, type Family } from '../model/ip.js';

export class SandboxSpecError extends Error {
  override readonly name = 'SandboxSpecError';
}

export function parseField(text: string | undefined, what: string, family: Family): Cidr {
  if (text === undefined) throw new SandboxSpecError(`${what} is missing`);
  let cidr: Cidr;
  try {
    cidr = parseCidr(text);
  } catch (e) {
    if (e instanceof ParseError) throw new SandboxSpecError(`${what}: ${e.message}`);
    throw e;
  }
  if (cidr.family !== family) throw new SandboxSpecError(`${what}: "${text}" is not an IPv${family} CIDR`);
  return cidr;
}
