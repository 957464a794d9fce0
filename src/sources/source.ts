// Where the agent learns what the cluster looks like: the Kubernetes API or a cluster file.
import type { KubeObject } from './objects.js';

export type SourceObjectKind = 'Node' | 'Peer' | 'Service' | 'EndpointSlice';

export interface SourceObject {
  readonly kind: SourceObjectKind;
  readonly object: KubeObject;
  /** Where it came from, for error messages (the cluster file's document); absent for API objects. */
  readonly where?: string;
}

export interface ClusterSource {
  readonly kind: 'kubernetes' | 'file';
  /** Resolves once the first full state is known; `onChange` fires on every later change. */
  start(onChange: () => void): Promise<void>;
  /** Every object the source currently holds. */
  snapshot(): readonly SourceObject[];
  /** Writes this node's agent-owned annotations (null removes one). Returns whether anything was written. */
  publishNode(name: string, annotations: Readonly<Record<string, string | null>>): Promise<boolean>;
  stop(): Promise<void>;
}
