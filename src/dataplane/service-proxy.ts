// The contract every service data path (iptables, userspace, eBPF) fulfils.
import type { ServiceMap } from '../model/service.js';

export type ServiceProxyMode = 'ebpf' | 'iptables' | 'userspace';

export interface ServiceProxyReport {
  /** Writes to host state (restore calls, map updates, sockets opened or closed); 0 when nothing changed. */
  readonly written: number;
}

export interface ServiceProxy {
  readonly mode: ServiceProxyMode;
  /** Idempotent: programs exactly `map`, writing only what differs from what this proxy last did. */
  apply(map: ServiceMap): Promise<ServiceProxyReport>;
  /** Removes every rule, socket, program and pin this proxy made (and leftovers of a crashed run). */
  cleanup(): Promise<void>;
}
