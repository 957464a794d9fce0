// A piece of cluster input that was rejected: which object, which field, and why.
import { formatCidr } from '../model/ip.js';
import type { RejectedClaim } from '../mesh/claims.js';

export type ObjectKind = 'Node' | 'Peer' | 'Service' | 'EndpointSlice' | 'ClusterFile';

export interface Problem {
  readonly kind: ObjectKind;
  /** `name` or `namespace/name`; '' when the object has none. */
  readonly object: string;
  readonly field: string;
  readonly message: string;
}

export interface LocatedProblem extends Problem {
  /** Where the object came from, e.g. `document 3 (Node "b")`; absent for API objects. */
  readonly where?: string;
}

export function locatedProblem(p: Problem, where: string | undefined): LocatedProblem {
  return where ? { ...p, where } : p;
}

/** One line for the log: `Node "b": annotation wirelane.io/internal-ip: "300.1.2.3/99" is not a CIDR`. */
export function describeProblem(p: Problem): string {
  return `${p.kind} "${p.object}": ${p.field}: ${p.message}`;
}

/** An object that cannot be used at all; the problem says why. */
export class InvalidObjectError extends Error {
  override readonly name = 'InvalidObjectError';
  constructor(readonly problem: Problem) {
    super(describeProblem(problem));
  }
}

/** A dropped claim as a problem of its claimant: `Peer "x": spec.allowedIPs: 10.44.2.0/24 overlaps …`. */
export function rejectedClaimProblem(c: RejectedClaim): Problem {
  return { kind: c.kind, object: c.name, field: c.field, message: `${formatCidr(c.prefix)} ${c.reason}` };
}
