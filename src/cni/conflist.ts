// The CNI network configuration list of CNI mode (--cni): the node's pod CIDRs and the mesh MTU
// turned into a configuration for the standard plugins, as Kilo's 10-kilo.conflist does. Pure: the
// agent writes its text (cni/conf-file.ts), the sandbox hands the same text to the plugins.
//
// - bridge: one bridge per node holding each pod CIDR's gateway (its first address), a veth per pod.
//   hairpinMode lets a pod reach itself through a Service (iptables mode DNATs it back out of the
//   port it came in by); ipMasq stays off because the mesh masquerades (WIRELANE-NAT) what leaves it.
// - host-local: one range per family over spec.podCIDRs, default routes per family via the gateway.
// - portmap: hostPort mappings, which runtimes pass only to plugins that ask for the capability.
// - loopback is not listed: containerd and CRI-O bring a pod's lo up themselves, with their own
//   configuration, whatever the network's list says.
import { MIN_MTU } from '../mesh/mtu.js';
import { type Cidr, type Family, formatCidr, networkOf } from '../model/ip.js';

/** 0.4.0, not 1.0.0: it has CHECK and cached results, and runtimes as old as containerd 1.4 read it. */
export const CNI_VERSION = '0.4.0';
/** The network's name, also how clean-up recognises a configuration file as this agent's. */
export const CNI_NETWORK_NAME = 'wirelane';
/** The bridge the bridge plugin makes (agent/discovery.ts never takes its addresses for the node's). */
export const CNI_BRIDGE = 'wirelane-br';

/** A plugin's entry in the list: its type and its own fields. */
export type CniPluginConfig = { readonly type: string } & Readonly<Record<string, unknown>>;

export interface CniConfigList {
  readonly cniVersion: string;
  readonly name: string;
  readonly plugins: readonly CniPluginConfig[];
}

export interface CniNetworkInput {
  /** The node's spec.podCIDRs; the first of each family is used. */
  readonly podCIDRs: readonly Cidr[];
  /** The mesh MTU (mesh/mtu.ts): pods send nothing the tunnel would have to fragment. */
  readonly mtu: number;
  /** host-local's state directory; undefined keeps the plugin's default (/var/lib/cni/networks). */
  readonly ipamDataDir?: string;
}

/** The configuration list, or why the node has none (yet). */
export type CniNetwork = { readonly list: CniConfigList } | { readonly missing: string } | { readonly invalid: string };

/** Smallest pod CIDRs host-local can serve: room for the network address, the gateway and a pod (and broadcast). */
const MAX_BITS: Readonly<Record<Family, number>> = { 4: 30, 6: 126 };

export function cniNetworkOf(input: CniNetworkInput): CniNetwork {
  const perFamily = ([4, 6] as const).flatMap((family) => input.podCIDRs.find((c) => c.family === family) ?? []);
  if (perFamily.length === 0) return { missing: 'the node has no pod CIDR (spec.podCIDRs) yet' };
  const tooSmall = perFamily.find((c) => c.bits > MAX_BITS[c.family]);
  if (tooSmall !== undefined) return { invalid: `pod CIDR ${formatCidr(tooSmall)} has no room for a gateway and a pod` };
  if (!Number.isInteger(input.mtu) || input.mtu < MIN_MTU || input.mtu > 65535) return { invalid: `MTU ${input.mtu} is outside ${MIN_MTU}-65535` };
  const subnets = perFamily.map(networkOf);
  const ipam: Record<string, unknown> = {
    type: 'host-local',
    ranges: subnets.map((subnet) => [{ subnet: formatCidr(subnet) }]),
    routes: subnets.map((subnet) => ({ dst: subnet.family === 4 ? '0.0.0.0/0' : '::/0' })),
    ...(input.ipamDataDir !== undefined && { dataDir: input.ipamDataDir }),
  };
  return {
    list: {
      cniVersion: CNI_VERSION,
      name: CNI_NETWORK_NAME,
      plugins: [
        { type: 'bridge', bridge: CNI_BRIDGE, isGateway: true, forceAddress: true, hairpinMode: true, ipMasq: false, mtu: input.mtu, ipam },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      ],
    },
  };
}

/** The file's text: stable (same input, same bytes), so a rewrite happens only on a real change. */
export function formatCniConfigList(list: CniConfigList): string {
  return `${JSON.stringify(list, null, 2)}\n`;
}

/** A configuration file's text as a runtime reads it: JSON with a version, a name and typed plugins. */
export function parseCniConfigList(text: string): CniConfigList {
  const parsed: unknown = JSON.parse(text);
  const record = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!record(parsed) || typeof parsed['cniVersion'] !== 'string' || typeof parsed['name'] !== 'string') {
    throw new Error('a CNI configuration list needs "cniVersion" and "name" strings');
  }
  const plugins = parsed['plugins'];
  if (!Array.isArray(plugins) || plugins.length === 0 || !plugins.every((p) => record(p) && typeof p['type'] === 'string')) {
    throw new Error(`CNI network "${parsed['name']}": "plugins" is not a list of plugins with a "type"`);
  }
  return { cniVersion: parsed['cniVersion'], name: parsed['name'], plugins: plugins as CniPluginConfig[] };
}

/** True when a configuration file's text is one this agent writes: it may replace or remove it. */
export function isOwnCniConfigList(text: string): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return false;
  }
  if (typeof parsed !== 'object' || parsed === null) return false;
  const { name, plugins } = parsed as { name?: unknown; plugins?: unknown };
  if (name !== CNI_NETWORK_NAME || !Array.isArray(plugins)) return false;
  const [first] = plugins as unknown[];
  return typeof first === 'object' && first !== null && (first as { bridge?: unknown }).bridge === CNI_BRIDGE;
}
