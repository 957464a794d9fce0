// What an agent has programmed on a sandbox node, as sets of lines an operator would read: the
// agent's routes and rules (iproute2), its WireGuard peers, its iptables rules (iptables-save) and
// its eBPF service entries. Fault tests take one before a fault and compare: nothing may go.
import type { MeshCluster } from '../../src/sandbox/mesh-cluster.js';

export type HostState = Readonly<Record<'routes' | 'rules' | 'peers' | 'iptables' | 'ebpf', readonly string[]>>;

const AGENT_CHAIN = /\b(WIRELANE|WLSVC|WLPROXY)[-A-Z0-9_]*/;

export async function hostState(cluster: MeshCluster, name: string): Promise<HostState> {
  const node = cluster.sandbox.node(name);
  const run = async (file: string, args: readonly string[]) => (await cluster.sandbox.exec(node, file, args, { allowFailure: true })).stdout;
  const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const routes = [
    ...lines(await run('ip', ['-4', 'route', 'show', 'table', 'all', 'proto', '0x57'])),
    ...lines(await run('ip', ['-6', 'route', 'show', 'table', 'all', 'proto', '0x57'])),
  ];
  const rules = [...lines(await run('ip', ['-4', 'rule', 'show', 'priority', '1107'])), ...lines(await run('ip', ['-6', 'rule', 'show', 'priority', '1107']))];
  const peers = lines(await run('wg', ['show', cluster.interfaceOf(name), 'peers']));
  const iptables: string[] = [];
  for (const save of ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save']) {
    // Counters differ between two reads; the rules do not.
    for (const l of lines(await run(save, []))) if (l.startsWith('-A') && AGENT_CHAIN.test(l)) iptables.push(`${save}: ${l}`);
  }
  // A node in another mode has no such pin: bpftool then prints {"error": ...}.
  const services: unknown = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${cluster.bpffs}/${name}/wl_services`])) || '[]');
  const ebpf = Array.isArray(services) ? services.map((e: { key: unknown }) => JSON.stringify(e.key)) : [];
  return { routes, rules, peers, iptables, ebpf };
}

/** What `before` had that `after` lacks, per kind, as `kind: line`. Empty when nothing was removed. */
export function removedBetween(before: HostState, after: HostState): string[] {
  const removed: string[] = [];
  for (const kind of Object.keys(before) as (keyof HostState)[]) {
    const now = new Set(after[kind]);
    for (const line of before[kind]) if (!now.has(line)) removed.push(`${kind}: ${line}`);
  }
  return removed;
}
