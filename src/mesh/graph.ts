// The mesh as a Graphviz digraph, as `kgctl graph` draws it: a cluster per location, leaders with
// their WireGuard IP and endpoint, leader→member edges, the WireGuard mesh between leaders, and
// dashed edges to Peers. Under `cross` granularity the nodes of one location are joined by dotted
// underlay edges instead of WireGuard.
import { formatEndpoint } from '../model/endpoint.js';
import { formatCidr, formatIp, ipOf, networkOf } from '../model/ip.js';
import { type MeshNode, internalIPsOf } from '../model/mesh.js';
import type { Segment, TopologyCore } from './types.js';

/** Quotes a DOT identifier or label. */
function q(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A multi-line label: each line quoted, joined by DOT's `\n`. */
function label(lines: readonly string[]): string {
  return `"${lines.map((l) => q(l).slice(1, -1)).join('\\n')}"`;
}

function nodeLabel(node: MeshNode, segment: Segment): string {
  const lines = [node.location || '(no location)', node.name, ...node.podCIDRs.map(formatCidr)];
  lines.push(...internalIPsOf(node).map((c) => formatIp(ipOf(c))));
  if (segment.leader.name === node.name) lines.push(...segment.wireguardIPs.map(formatIp), formatEndpoint(segment.endpoint));
  return label(lines);
}

export function renderGraph(t: TopologyCore): string {
  const out: string[] = [
    'digraph wirelane {',
    `  label=${q(t.options.subnets.map((s) => formatCidr(networkOf(s))).join(', '))};`,
    '  labelloc=t;',
    '  outputorder=nodesfirst;',
    '  overlap=false;',
  ];
  const groups = new Map<string, Segment[]>();
  for (const s of t.segments) groups.set(s.group, [...(groups.get(s.group) ?? []), s]);
  let cluster = 0;
  for (const [group, segments] of groups) {
    // A group is a location, or one node without an internal IP (key `node:<name>`).
    const title = segments[0]?.location || group;
    out.push(`  subgraph ${q(`cluster_location_${cluster++}`)} {`, `    label=${q(title)};`, '    style="dashed,rounded";');
    for (const s of segments) {
      for (const n of s.nodes) {
        const leader = s.leader.name === n.name;
        out.push(`    ${q(n.name)} [label=${nodeLabel(n, s)}, shape=ellipse${leader ? ', peripheries=2' : ''}];`);
      }
      for (const n of s.nodes) if (n.name !== s.leader.name) out.push(`    ${q(s.leader.name)} -> ${q(n.name)};`);
    }
    // Segments that share an underlay group (cross granularity) talk over the underlay.
    for (let i = 0; i < segments.length; i++) {
      for (let j = i + 1; j < segments.length; j++) {
        out.push(`    ${q((segments[i] as Segment).leader.name)} -> ${q((segments[j] as Segment).leader.name)} [dir=both, style=dotted];`);
      }
    }
    out.push('  }');
  }
  for (let i = 0; i < t.segments.length; i++) {
    for (let j = i + 1; j < t.segments.length; j++) {
      const [a, b] = [t.segments[i] as Segment, t.segments[j] as Segment];
      if (a.group !== b.group) out.push(`  ${q(a.leader.name)} -> ${q(b.leader.name)} [dir=both];`);
    }
  }
  if (t.peers.length > 0) {
    out.push(`  subgraph "cluster_peers" {`, '    label="peers";', '    style="dashed,rounded";');
    for (const p of t.peers) {
      const lines = [p.name, ...p.allowedIPs.map(formatCidr), ...(p.endpoint ? [formatEndpoint(p.endpoint)] : [])];
      out.push(`    ${q(`peer:${p.name}`)} [label=${label(lines)}, shape=box];`);
    }
    out.push('  }');
    for (const s of t.segments) for (const p of t.peers) out.push(`  ${q(s.leader.name)} -> ${q(`peer:${p.name}`)} [dir=both, style=dashed];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
