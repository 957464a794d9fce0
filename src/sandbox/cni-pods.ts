// Pods made by the real CNI plugins (plan.ts, podNetwork 'cni'), as a kubelet's runtime makes them:
// per node the configuration list the agent writes in CNI mode for that node (the same pure
// function, with the MTU an agent with --mtu auto derives here), host-local's state in a directory
// of the sandbox's own (never the host's shared /var/lib/cni), the loopback network first as
// containerd does, and DEL in reverse order before the namespaces go.
import { join } from 'node:path';
import { CNI_BRIDGE, cniNetworkOf, formatCniConfigList, type CniConfigList } from '../cni/conflist.js';
import { cniAdd, cniDel, DEBIAN_CNI_PLUGIN_DIR, loopbackList, podAttachmentOf, type CniAttachment, type CniResult, type PodAttachment } from '../cni/plugin-runner.js';
import { meshMtuOf } from '../mesh/mtu.js';
import { parseCidr } from '../model/ip.js';
import type { PlannedNode, PlannedPod } from './plan.js';

/** The kernel's default MTU of the sandbox's underlay veths, from which an agent's --mtu auto starts. */
const UNDERLAY_MTU = 1500;

/** Where a sandbox keeps host-local's state, one directory per node; under /run like its registry. */
export function cniStateDirOf(prefix: string): string {
  return join('/run/wirelane', `${prefix}cni`);
}

/** A node's network as the agent would write it: the list, its file text, and host-local's directory. */
export interface NodeCniNetwork {
  readonly list: CniConfigList;
  readonly text: string;
  readonly ipamDir: string;
}

export function nodeCniNetworkOf(prefix: string, node: PlannedNode): NodeCniNetwork {
  const ipamDir = join(cniStateDirOf(prefix), node.name);
  const network = cniNetworkOf({ podCIDRs: node.podCIDRs.map(parseCidr), mtu: meshMtuOf('auto', UNDERLAY_MTU), ipamDataDir: ipamDir });
  if (!('list' in network)) throw new Error(`sandbox node "${node.name}": no CNI network: ${'missing' in network ? network.missing : network.invalid}`);
  return { list: network.list, text: formatCniConfigList(network.list), ipamDir };
}

/** A pod attached by the plugins: what DEL needs back, and what ADD handed out. */
export interface CniPod {
  readonly list: CniConfigList;
  readonly attachment: CniAttachment;
  readonly loopback: CniAttachment;
  readonly result: CniResult;
  readonly address: PodAttachment;
}

function attachmentsOf(prefix: string, pod: PlannedPod): { attachment: CniAttachment; loopback: CniAttachment } {
  const netnsPath = `/run/netns/${pod.netns}`;
  const containerId = `${prefix}${pod.name}`;
  return { attachment: { containerId, netnsPath, ifname: pod.iface }, loopback: { containerId, netnsPath, ifname: 'lo' } };
}

/** ADD for one pod; the plugins run in the node's namespace, as the runtime runs them on the host. */
export async function addCniPod(prefix: string, node: PlannedNode, pod: PlannedPod, list: CniConfigList): Promise<CniPod> {
  const runtime = { pluginDir: DEBIAN_CNI_PLUGIN_DIR, netns: node.netns };
  const { attachment, loopback } = attachmentsOf(prefix, pod);
  await cniAdd(loopbackList(list.cniVersion), loopback, runtime);
  const result = await cniAdd(list, attachment, runtime);
  const address = podAttachmentOf(result, CNI_BRIDGE);
  if (address.ipv4 === undefined) throw new Error(`CNI ADD for ${attachment.containerId}: the result has no IPv4 address`);
  return { list, attachment, loopback, result, address };
}

/** DEL for one pod, networks in reverse order of their ADD. */
export async function deleteCniPod(node: PlannedNode, pod: CniPod): Promise<void> {
  const runtime = { pluginDir: DEBIAN_CNI_PLUGIN_DIR, netns: node.netns };
  await cniDel(pod.list, pod.attachment, runtime, pod.result);
  await cniDel(loopbackList(pod.list.cniVersion), pod.loopback, runtime, undefined);
}
