// Runs a network's plugins the way a container runtime does (libcni): ADD in list order, each plugin
// handed the previous one's result; DEL in reverse order, handed the ADD's result. The sandbox makes
// its pods with it, so the pod path under test is the one a cluster's kubelet gets.
import { CommandError, runCommand } from '../host/command.js';
import type { CniConfigList, CniPluginConfig } from './conflist.js';

/** Debian's containernetworking-plugins; kubelet and containerd look in /opt/cni/bin. */
export const DEBIAN_CNI_PLUGIN_DIR = '/usr/lib/cni';

/** One pod's attachment, as the runtime names it to the plugins (CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME). */
export interface CniAttachment {
  readonly containerId: string;
  /** The pod's network namespace as a path, e.g. /run/netns/NAME. */
  readonly netnsPath: string;
  readonly ifname: string;
}

export interface CniRuntime {
  /** CNI_PATH: where the plugin binaries are. */
  readonly pluginDir: string;
  /** The network namespace the plugins run in (the node's); undefined = the caller's. */
  readonly netns?: string;
}

export interface CniInterface {
  readonly name: string;
  /** Set for interfaces inside the pod; absent for the host's (the bridge, the host end of a veth). */
  readonly sandbox?: string;
}

export interface CniIpConfig {
  /** `ip/prefixLength`. */
  readonly address: string;
  readonly gateway?: string;
}

/** The part of a plugin's result this project reads; the rest is passed on to the next plugin as it came. */
export interface CniResult {
  readonly interfaces?: readonly CniInterface[];
  readonly ips?: readonly CniIpConfig[];
  readonly [field: string]: unknown;
}

/** Raised for a plugin that failed: its name, the command, and the CNI error message it printed. */
export class CniPluginError extends Error {
  override readonly name = 'CniPluginError';
}

/** What one plugin reads on stdin: its own entry, with the list's name and version and the previous result. */
export function pluginStdin(list: CniConfigList, plugin: CniPluginConfig, prevResult: CniResult | undefined): string {
  return JSON.stringify({ ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prevResult !== undefined && { prevResult }) });
}

/** A plugin's failure as CNI reports it (`{"code":…,"msg":…,"details":…}` on stdout), or stderr's first line. */
function failureOf(err: CommandError): string {
  try {
    const parsed = JSON.parse(err.stdout) as { msg?: unknown; details?: unknown };
    if (typeof parsed.msg === 'string') return typeof parsed.details === 'string' && parsed.details !== '' ? `${parsed.msg}: ${parsed.details}` : parsed.msg;
  } catch {
    // not JSON: fall through to the command's own message
  }
  return err.message;
}

function isResult(value: unknown): value is CniResult {
  if (typeof value !== 'object' || value === null) return false;
  const { interfaces, ips } = value as { interfaces?: unknown; ips?: unknown };
  const listOf = (v: unknown, field: string) => v === undefined || (Array.isArray(v) && v.every((e) => typeof e === 'object' && e !== null && typeof (e as Record<string, unknown>)[field] === 'string'));
  return listOf(interfaces, 'name') && listOf(ips, 'address');
}

async function runPlugin(
  command: 'ADD' | 'DEL',
  list: CniConfigList,
  plugin: CniPluginConfig,
  prevResult: CniResult | undefined,
  at: CniAttachment,
  runtime: CniRuntime,
): Promise<string> {
  // The type names a binary in CNI_PATH: never a path of its own.
  if (!/^[A-Za-z0-9_.-]+$/.test(plugin.type)) throw new CniPluginError(`CNI ${command}: plugin type "${plugin.type}" is not a file name`);
  const env = { CNI_COMMAND: command, CNI_CONTAINERID: at.containerId, CNI_NETNS: at.netnsPath, CNI_IFNAME: at.ifname, CNI_PATH: runtime.pluginDir };
  try {
    const result = await runCommand(`${runtime.pluginDir}/${plugin.type}`, [], {
      input: pluginStdin(list, plugin, prevResult),
      env,
      ...(runtime.netns !== undefined && { netns: runtime.netns }),
    });
    return result.stdout;
  } catch (err) {
    if (err instanceof CommandError) throw new CniPluginError(`CNI ${command} ${plugin.type} for ${at.containerId}: ${failureOf(err)}`, { cause: err });
    throw err;
  }
}

/** Attaches a pod to the network: every plugin in order; the last plugin's result is the network's. */
export async function cniAdd(list: CniConfigList, at: CniAttachment, runtime: CniRuntime): Promise<CniResult> {
  let result: CniResult | undefined;
  for (const plugin of list.plugins) {
    const out = await runPlugin('ADD', list, plugin, result, at, runtime);
    let parsed: unknown;
    try {
      parsed = JSON.parse(out);
    } catch {
      throw new CniPluginError(`CNI ADD ${plugin.type} for ${at.containerId}: the result is not JSON`);
    }
    if (!isResult(parsed)) throw new CniPluginError(`CNI ADD ${plugin.type} for ${at.containerId}: the result has no valid interfaces/ips`);
    result = parsed;
  }
  if (result === undefined) throw new CniPluginError(`CNI ADD for ${at.containerId}: the network "${list.name}" lists no plugins`);
  return result;
}

/** Detaches a pod: every plugin in reverse order, each handed the ADD's result (CNI 0.4.0 and later). */
export async function cniDel(list: CniConfigList, at: CniAttachment, runtime: CniRuntime, result: CniResult | undefined): Promise<void> {
  for (const plugin of [...list.plugins].reverse()) await runPlugin('DEL', list, plugin, result, at, runtime);
}

/** The loopback network containerd and CRI-O give every pod besides the configured one. */
export function loopbackList(cniVersion: string): CniConfigList {
  return { cniVersion, name: 'cni-loopback', plugins: [{ type: 'loopback' }] };
}

/** A pod's addresses and host-side interface, from the result of an ADD. */
export interface PodAttachment {
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
  /** The host end of the pod's veth (in the node's namespace), when the result names one. */
  readonly hostIface: string | undefined;
}

export function podAttachmentOf(result: CniResult, bridge: string): PodAttachment {
  const ips = (result.ips ?? []).map((ip) => ip.address.split('/')[0] ?? '');
  return {
    ipv4: ips.find((ip) => ip.includes('.')),
    ipv6: ips.find((ip) => ip.includes(':')),
    hostIface: (result.interfaces ?? []).find((i) => i.sandbox === undefined && i.name !== bridge)?.name,
  };
}
