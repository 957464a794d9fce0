// Where the fast path is proven (the services conformance suite, the mesh and CNI tests): where the
// agent owns both ends of what the programs bypass. Its own CNI network (--cni: the bridge whose
// ports it attaches to, no other CNI's network policies in FORWARD), and its own service proxy
// (--service-proxy other than off: translation at connect() by the ebpf mode, or in netfilter,
// whose conntrack NAT the programs look up and leave to the stack). Pure: read by the flag parser
// (--fast-path on is refused at once where it cannot serve) and by the agent (auto).
import type { AgentConfig } from './config.js';

/** Why the fast path cannot serve this configuration at all (--fast-path on is refused), or undefined. */
export function fastPathRefusal(config: Pick<AgentConfig, 'serviceProxy'>): string | undefined {
  if (config.serviceProxy === 'off') {
    return "--service-proxy off: another service proxy translates pod traffic where the fast path cannot see it (it sees netfilter's conntrack NAT and the ebpf mode's connect() only)";
  }
  return undefined;
}

/** Why auto leaves the fast path off for this configuration (the kernel aside), or undefined when it is proven here. */
export function autoDeclines(config: Pick<AgentConfig, 'serviceProxy' | 'cni'>): string | undefined {
  if (!config.cni) return "--cni=false: the pods are another CNI's (its bridge, its network policies in FORWARD), which the fast path would bypass";
  return fastPathRefusal(config);
}

/** The one error of --fast-path on where it cannot serve. */
export function fastPathOnRefused(refusal: string): string {
  return `--fast-path on: ${refusal}; use --fast-path auto or off`;
}

