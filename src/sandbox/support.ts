// Whether this machine can build a sandbox: the demo and the integration tests ask first.
import { DEBIAN_CNI_PLUGIN_DIR } from '../cni/plugin-runner.js';
import { runCommand } from '../host/command.js';

const TOOLS: readonly ToolCheck[] = [
  ['ip', ['-V']],
  ['sysctl', ['--version']],
  ['nft', ['--version']],
  // Pods are made by the standard CNI plugins (cni-pods.ts), unless WIRELANE_SANDBOX_PODS=veth.
  ...['bridge', 'host-local', 'portmap', 'loopback'].map((plugin): ToolCheck => [`${DEBIAN_CNI_PLUGIN_DIR}/${plugin}`, ['--version']]),
];

/** A command and arguments that succeed when it is installed (`--version` or the like). */
export type ToolCheck = readonly [string, readonly string[]];

/** Why a sandbox (and whatever else `tools` names) cannot be used here, or undefined when it can. */
export async function sandboxUnsupportedReason(tools: readonly ToolCheck[] = []): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root';
  for (const [tool, args] of [...TOOLS, ...tools]) {
    try {
      await runCommand(tool, args);
    } catch {
      return `the "${tool}" command is missing`;
    }
  }
  return undefined;
}

export const WIREGUARD_TOOLS: readonly ToolCheck[] = [['wg', ['--version']], ['wireguard-go', ['--version']]];
export const IPTABLES_TOOLS: readonly ToolCheck[] = [['iptables', ['-V']], ['ip6tables', ['-V']]];
/** What a mesh of real agents in a sandbox needs: WireGuard, iptables, and ping/curl for the checks. */
export const AGENT_TOOLS: readonly ToolCheck[] = [...WIREGUARD_TOOLS, ...IPTABLES_TOOLS, ['ping', ['-V']], ['curl', ['--version']]];
