// The agent's configuration, parsed and checked once at start.
import type { Cidr } from '../model/ip.js';
import type { Encapsulation, Granularity } from '../model/mesh.js';
import type { LogLevel } from '../observability/logger.js';

export type SourceConfig = { readonly kind: 'kubernetes'; readonly kubeconfig?: string } | { readonly kind: 'file'; readonly path: string };

export interface AgentConfig {
  readonly source: SourceConfig;
  readonly hostname: string;
  readonly stateDir: string;
  readonly interface: string;
  readonly port: number;
  readonly subnet: Cidr;
  readonly granularity: Granularity;
  readonly encapsulate: Encapsulation;
  readonly local: boolean;
  readonly topologyLabel: string;
  readonly internalCidrs: readonly Cidr[];
  readonly resyncPeriodMs: number;
  readonly listen: { readonly host: string | undefined; readonly port: number };
  readonly cleanUp: boolean;
  /** 'auto' = underlay MTU − 80 (WireGuard's overhead over IPv6). */
  readonly mtu: number | 'auto';
  readonly iptablesForwardRules: boolean;
  readonly logLevel: LogLevel;
}
