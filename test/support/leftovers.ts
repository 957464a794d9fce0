// What an agent can leave on a sandbox node, whatever it made, read the way an operator would (ip,
// iptables-save, bpftool, the pin directory): for tests that check a node is as it was before an
// agent ran, or holds nothing of a service proxy mode.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FAST_PATH_DIR } from '../../src/dataplane/ebpf/fast-path.js';
import { runCommand } from '../../src/host/command.js';
import { captureNetworkState } from '../../src/host/network-state.js';
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { uapiSocketPath } from '../../src/wireguard/uapi-socket.js';

/** Rules and user chains of one iptables-save; empty built-in tables appear once anything used iptables-nft. */
async function iptablesLines(cluster: MeshCluster, node: string, tool: 'iptables-save' | 'ip6tables-save'): Promise<string[]> {
  const { stdout } = await cluster.sandbox.exec(cluster.sandbox.node(node), tool, []);
  return stdout.split('\n').filter((l) => l.startsWith('-A') || (l.startsWith(':') && !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(l)));
}

/** Every pin under the node's pin directory, as paths relative to it. */
export function pinsOf(cluster: MeshCluster, node: string): string[] {
  const walk = (dir: string, prefix: string): string[] =>
    existsSync(dir)
      ? readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? [`${prefix}${name}/`, ...walk(join(dir, name), `${prefix}${name}/`)] : [`${prefix}${name}`]))
      : [];
  return walk(join(cluster.bpffs, node), '').sort();
}

/**
 * The ids of the bpf links pinned for the node: the service proxy's (socket programs on its cgroup,
 * tcx programs on its interfaces), or with `dir` 'fast-path/links/' the fast path's.
 */
export async function pinnedLinkIds(cluster: MeshCluster, node: string, dir = 'links/'): Promise<number[]> {
  const links = pinsOf(cluster, node).filter((p) => p.startsWith(dir) && !p.endsWith('/'));
  const ids: number[] = [];
  for (const pin of links) {
    const { stdout } = await runCommand('bpftool', ['-j', 'link', 'show', 'pinned', join(cluster.bpffs, node, pin)]);
    ids.push((JSON.parse(stdout) as { id: number }).id);
  }
  return ids.sort((a, b) => a - b);
}

/** Which of these bpf link ids still exist on the machine. */
export async function existingLinks(ids: readonly number[]): Promise<number[]> {
  const all = new Set((JSON.parse((await runCommand('bpftool', ['-j', 'link', 'show'])).stdout || '[]') as { id: number }[]).map((l) => l.id));
  return ids.filter((id) => all.has(id));
}

/** The service data paths' state on a node: one field per mode, empty when the mode left nothing. */
export async function serviceState(cluster: MeshCluster, node: string) {
  const [v4, v6] = await Promise.all([iptablesLines(cluster, node, 'iptables-save'), iptablesLines(cluster, node, 'ip6tables-save')]);
  const cgroup = (await runCommand('bpftool', ['-j', 'cgroup', 'show', join(cluster.sandbox.cgroups!.root, node)])).stdout.trim();
  const net = await cluster.sandbox.exec(cluster.sandbox.node(node), 'bpftool', ['-j', 'net', 'show']);
  const tc = (JSON.parse(net.stdout || '[]') as { tc?: unknown[] }[]).flatMap((entry) => entry.tc ?? []);
  // Chains by their prefix, jumps into them by their comment.
  const iptablesOf = (chain: string, comment: string) => [...v4, ...v6].filter((l) => l.includes(chain) || l.includes(comment));
  return {
    iptables: iptablesOf('WLSVC-', 'wirelane-svc:'),
    userspace: iptablesOf('WLPROXY-', 'wirelane-proxy:'),
    ebpf: {
      cgroupPrograms: (JSON.parse(cgroup || '[]') as { name?: string }[]).map((p) => p.name ?? '?'),
      tcFilters: tc.map((f) => JSON.stringify(f)),
      // The fast path is no service mode: its pins are nodeState's fastPathPins.
      pins: pinsOf(cluster, node).filter((p) => !p.startsWith(`${FAST_PATH_DIR}/`)),
    },
  };
}

/** Everything the agent could touch on a node, comparable with deepEqual. */
export async function nodeState(cluster: MeshCluster, node: string) {
  const n = cluster.sandbox.node(node);
  const net = await captureNetworkState({ netns: n.netns });
  const services = await serviceState(cluster, node);
  return {
    links: net.links.map((l) => `${l.name} ${l.kind ?? ''} mtu ${l.mtu} ${l.up ? 'up' : 'down'}`).sort(),
    addresses: net.addresses.map((a) => `${a.ifname} ${a.cidr}`).sort(),
    routes: net.routes.map((r) => `${r.table} ${r.dst} ${r.gateway ?? ''} ${r.dev ?? ''} ${r.protocol}`).sort(),
    rules: net.rules.map((r) => JSON.stringify(r)).sort(),
    iptables: await iptablesLines(cluster, node, 'iptables-save'),
    ip6tables: await iptablesLines(cluster, node, 'ip6tables-save'),
    ebpf: services.ebpf,
    fastPathPins: pinsOf(cluster, node).filter((p) => p.startsWith(`${FAST_PATH_DIR}/`)),
    wireguardSocket: existsSync(uapiSocketPath(cluster.interfaceOf(node))),
    processes: (await runCommand('ip', ['netns', 'pids', n.netns])).stdout.trim(),
  };
}
