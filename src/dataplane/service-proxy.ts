// The contract every service data path (iptables, userspace, eBPF) fulfils.
import type { ServiceChanges } from '../services/changes.js';

export type ServiceProxyMode = 'ebpf' | 'iptables' | 'userspace';

export interface ServiceProxyReport {
  /** Writes to host state (restore calls, map updates, sockets opened or closed); 0 when nothing changed. */
  readonly written: number;
  /** Problems the apply got past, one line each (iptables: a failed partial restore, repaired by a full sync). */
  readonly warnings?: readonly string[];
  /**
   * Service frontends the data path has no room for, by the table that is full (eBPF: services,
   * backends, slots); the proxy logs them. Absent: the mode has no such limit.
   */
  readonly unfit?: Readonly<Record<string, number>>;
}

export interface ServiceProxy {
  readonly mode: ServiceProxyMode;
  /**
   * Idempotent: programs exactly `changes.map`, writing only what differs from what this proxy
   * last did. `changes` are what differs from this proxy's last successful apply (one
   * ServiceChangeTracker per proxy, services/changes.ts); each proxy takes from them what it needs.
   */
  apply(changes: ServiceChanges): Promise<ServiceProxyReport>;
  /** Removes every rule, socket, program and pin this proxy made (and leftovers of a crashed run). */
  cleanup(): Promise<void>;
}
