// A piece of cluster input that was rejected: which object, which field, and why.

export type ObjectKind = 'Node' | 'Peer' | 'Service' | 'EndpointSlice' | 'ClusterFile';

export interface Problem {
  readonly kind: ObjectKind;
  /** `name` or `namespace/name`; '' when the object has none. */
  readonly object: string;
  readonly field: string;
  readonly message: string;
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
