// The iptables service proxy: kube-proxy's iptables design under wirelane's own chain names.
export { ConntrackFlushError, IptablesServiceProxy, type IptablesServiceProxyOptions, type IptablesServiceProxyReport } from './iptables-service-proxy.js';
export { computeServiceRules } from './rules.js';
export {
  FILTER_CHAIN,
  FILTER_NODEPORTS_CHAIN,
  MARK_MASQ_CHAIN,
  MASQ_MARK,
  NODEPORTS_CHAIN,
  OFF_CLUSTER_CHAIN,
  POSTROUTING_CHAIN,
  SERVICE_OWNER,
  SERVICES_CHAIN,
  serviceChainName,
  type ServiceChainKind,
} from './chain-names.js';
