// The service proxy's iptables names: its owner prefixes, its fixed chains, and the hashed names of
// per-service and per-endpoint chains.
//
// The prefixes must not overlap the mesh's (`WIRELANE-`, `wirelane:`): each IptablesChains instance
// deletes every chain and jump carrying its prefixes that it does not want.
import { createHash } from 'node:crypto';
import type { ChainOwner } from '../iptables/ruleset.js';

export const SERVICE_OWNER: ChainOwner = { chainPrefix: 'WLSVC-', commentPrefix: 'wirelane-svc:' };

/** nat: jumped from PREROUTING and OUTPUT; dispatches by destination, protocol and port. */
export const SERVICES_CHAIN = 'WLSVC-SERVICES';
/** nat: reached from SERVICES for destinations among the node-port addresses. */
export const NODEPORTS_CHAIN = 'WLSVC-NODEPORTS';
/** nat: sets MASQ_MARK on a packet that must be masqueraded on its way out. */
export const MARK_MASQ_CHAIN = 'WLSVC-MARK-MASQ';
/** nat: marks a packet whose source is outside every cluster CIDR (an off-cluster client). */
export const OFF_CLUSTER_CHAIN = 'WLSVC-OFF-CLUSTER';
/** nat: jumped from POSTROUTING; masquerades marked packets. */
export const POSTROUTING_CHAIN = 'WLSVC-POSTROUTING';
/** filter: jumped from INPUT, FORWARD and OUTPUT for new connections; rejects and drops. */
export const FILTER_CHAIN = 'WLSVC-FILTER';
/** filter: the node-port part of FILTER_CHAIN. */
export const FILTER_NODEPORTS_CHAIN = 'WLSVC-FILTER-NODEPORTS';

/**
 * The packet mark bit meaning "masquerade me", the same bit kube-proxy uses (0x4000): the two must
 * not run on one node anyway, and tools that know kube-proxy's bit read ours the same way.
 */
export const MASQ_MARK = '0x4000';

/**
 * Per service port: SVC chooses among the cluster endpoints, SVL among the other endpoint list
 * (the local one under a Local traffic policy), SVX among a third list when the internal and
 * external lists both differ from the cluster list and from each other; EXT handles external
 * destinations (NodePort, external IPs, load-balancer IPs), FW filters load-balancer sources.
 * SEP is one endpoint on this node (hairpin mark, affinity record, DNAT); for an endpoint elsewhere
 * the same name only names its affinity list (`-m recent --name`), as it has no chain.
 */
export type ServiceChainKind = 'SVC' | 'SVL' | 'SVX' | 'EXT' | 'FW' | 'SEP';

// 16 hex characters (64 bits) keep the longest name, `WLSVC-SVC-` + 16, at 26 characters, under the
// kernel's 28; a collision among 10^5 names has a probability around 10^-10.
const HASH_LENGTH = 16;

/** A stable chain name from a service port key (and, for SEP, the endpoint `ip:port`). */
export function serviceChainName(kind: ServiceChainKind, key: string): string {
  return `${SERVICE_OWNER.chainPrefix}${kind}-${createHash('sha256').update(key).digest('hex').slice(0, HASH_LENGTH)}`;
}
