// Everything the agent can make on a host, removed whatever mode or run made it: what `wirelane
// cleanup` does and what the agent's own --clean-up does on exit, so the two cover the same. Each
// part is found by the agent's own marks (chain prefixes, route protocol, rule priority, device
// names, pin names), never by absence from a desired state, and each part is tried whatever
// happened to the others. On a clean host it removes nothing and succeeds.
import { removeCniConfigFile } from '../cni/conf-file.js';
import { removeOwnedChains } from '../dataplane/iptables/chains.js';
import { WIRELANE_OWNER } from '../dataplane/iptables/ruleset.js';
import { RoutesDataplane } from '../dataplane/routes/routes-dataplane.js';
import { VXLAN_DEVICE } from '../dataplane/tunnel/tunnel-device.js';
import { runIp } from '../host/ip.js';
import { findLink } from '../host/links.js';
import { errorLine } from '../observability/first-line.js';
import { removeWireGuardDevice } from '../wireguard/device-removal.js';
import type { AgentConfig } from './config.js';
import { SERVICE_PROXY_MODES, type ServicePlacement } from './service-proxy-modes.js';

export interface HostPlacement extends ServicePlacement {
  /** The WireGuard interface (--interface). */
  readonly interface: string;
  /** The CNI configuration list (--cni-conf-dir, --cni-conf-name), removed only when it is ours. */
  readonly cniConfFile: string;
}

/** Where the agent's host state lives, from its flags. */
export function hostPlacementOf(config: Pick<AgentConfig, 'interface' | 'cgroupRoot' | 'bpfDir' | 'cniConfFile'>): HostPlacement {
  return {
    interface: config.interface,
    meshInterface: config.interface,
    cniConfFile: config.cniConfFile,
    ...(config.cgroupRoot !== undefined && { cgroupRoot: config.cgroupRoot }),
    ...(config.bpfDir !== undefined && { bpffsDir: config.bpfDir }),
  };
}

/** Removes the node's agent-written annotations, one line per annotation removed (see NodePublisher). */
export type RemoveAnnotations = () => Promise<readonly string[]>;

export interface HostCleanupReport {
  /** What was removed, `part: what` per line; empty on a clean host. */
  readonly removed: readonly string[];
  /** Parts that could not be removed, `part: why` per line. */
  readonly failures: readonly string[];
}

type Part = readonly [name: string, remove: () => Promise<readonly string[]>];

/**
 * The parts, in stages whose parts run side by side (on an agent's exit this races the grace period
 * before SIGKILL): the CNI configuration first, so the runtime starts no pod on a node being taken
 * apart (running pods keep the bridge: it is theirs, made by the bridge plugin); the service data paths of every mode with the mesh's rules and routes; then the
 * devices, once no route of ours points at them (deleting a device takes its routes along, and the
 * route deletes would fail); the annotations last, once nothing is left that other nodes could
 * reach through what they announce.
 */
export async function removeHostState(placement: HostPlacement, removeAnnotations?: RemoveAnnotations): Promise<HostCleanupReport> {
  const stages: Part[][] = [
    // The fast path with it: pod traffic falls back to the stack before the mesh's routes go.
    [
      ['CNI configuration', () => removeCniConfigFile(placement.cniConfFile)],
      ['fast path', () => removeFastPathPins(placement.bpffsDir)],
    ],
    [
      ...SERVICE_PROXY_MODES.map((row): Part => [`${row.mode} service proxy`, () => row.removeLeftovers(placement)]),
      ['mesh iptables rules', () => removeOwnedChains(WIRELANE_OWNER)],
      ['routes and rules', removeRoutesAndRules],
    ],
    [
      ['tunnel', removeVxlanDevice],
      ['wireguard', () => removeWireGuardDevice(placement.interface)],
    ],
    removeAnnotations === undefined ? [] : [['annotations', removeAnnotations]],
  ];
  const removed: string[] = [];
  const failures: string[] = [];
  for (const stage of stages) {
    const outcomes = await Promise.allSettled(stage.map(([, remove]) => remove()));
    outcomes.forEach((outcome, i) => {
      const part = stage[i]![0];
      if (outcome.status === 'fulfilled') removed.push(...outcome.value.map((what) => `${part}: ${what}`));
      else failures.push(`${part}: ${errorLine(outcome.reason)}`);
    });
  }
  return { removed, failures };
}

async function removeFastPathPins(bpffsDir: string | undefined): Promise<string[]> {
  const [{ removeFastPathLeftovers }, { defaultBpffsDir }] = await Promise.all([import('../dataplane/ebpf/fast-path.js'), import('../dataplane/ebpf/ebpf-service-proxy.js')]);
  return removeFastPathLeftovers(bpffsDir ?? defaultBpffsDir());
}

async function removeRoutesAndRules(): Promise<string[]> {
  const { written } = await new RoutesDataplane().cleanup();
  return written > 0 ? [`${written} routes and rules deleted`] : [];
}

/**
 * The VXLAN device carries the agent's name. IPIP's tunl0 is shared with other software (Calico)
 * and is the kernel's own once the module is loaded: the routes through it went with the others.
 */
async function removeVxlanDevice(): Promise<string[]> {
  if ((await findLink(VXLAN_DEVICE))?.kind !== 'vxlan') return [];
  await runIp(['link', 'del', VXLAN_DEVICE]);
  return [`VXLAN device ${VXLAN_DEVICE}`];
}
