// Locations that are really apart on the flat sandbox: between nodes of different locations only
// WireGuard may cross, as between two sites over the internet. A bridge-family nftables table in
// the underlay namespace drops every IP frame from one location's node to another's except UDP
// to or from the WireGuard port; outside hosts and nodes of one location still reach each other.
// On the bridge, not in the nodes: it also stops what a tc program redirects past netfilter. It
// lives in the underlay namespace and goes with the sandbox.
import type { Sandbox } from '../../src/sandbox/sandbox.js';

const TABLE = 'wltest_apart';

/** Separates the sandbox's locations (see above); `wireguardPort` is the agents' --port. */
export async function separateLocations(sandbox: Sandbox, wireguardPort: number): Promise<void> {
  const ports = new Map<string, string[]>();
  for (const node of sandbox.plan.nodes) {
    if (node.location === undefined) throw new Error(`separateLocations: node ${node.name} has no location`);
    ports.set(node.location, [...(ports.get(node.location) ?? []), node.bridgePort]);
  }
  const rules: string[] = [];
  for (const [from, fromPorts] of ports) {
    for (const [to, toPorts] of ports) {
      if (from === to) continue;
      const pair = `iifname { ${fromPorts.map(quote).join(', ')} } oifname { ${toPorts.map(quote).join(', ')} }`;
      rules.push(`${pair} udp dport ${wireguardPort} accept`, `${pair} udp sport ${wireguardPort} accept`, `${pair} ether type { ip, ip6 } counter drop`);
    }
  }
  const script = [`table bridge ${TABLE} {`, '  chain forward {', '    type filter hook forward priority 0; policy accept;', ...rules.map((r) => `    ${r}`), '  }', '}', ''].join('\n');
  await sandbox.exec(sandbox.underlayNetns, 'nft', ['-f', '-'], { input: script });
}

/** Frames the separation dropped so far (proof that it is in the path). */
export async function framesKeptApart(sandbox: Sandbox): Promise<number> {
  const { stdout } = await sandbox.exec(sandbox.underlayNetns, 'nft', ['list', 'table', 'bridge', TABLE]);
  return [...stdout.matchAll(/counter packets (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

function quote(name: string): string {
  return `"${name}"`;
}
