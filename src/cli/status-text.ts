// `wirelane status` as a person reads it: the agent's /status document (agent/status.ts) as text.
// Pure: ages are taken against the agent's own `time`, so the reader's clock does not matter.
import type { AgentStatus, WireGuardPeerStatus } from '../agent/status.js';

export function renderStatus(s: AgentStatus): string {
  const now = Date.parse(s.time);
  const ago = (iso: string | null): string => (iso === null ? 'never' : `${formatAge(now - Date.parse(iso))} ago`);
  const lines: string[] = [];
  const row = (label: string, value: string): void => void lines.push(`${`${label}:`.padEnd(16)}${value}`.trimEnd());

  row('Node', `${s.node} (wirelane ${s.version})`);
  row('Ready', s.ready ? 'yes' : `no: ${s.notReady ?? 'unknown'}`);
  row('Healthy', s.healthy ? 'yes' : 'no (see /healthz)');

  const proxy = s.serviceProxy;
  const chosen = proxy.chosenBy === 'auto' ? ' (auto)' : proxy.chosenBy === 'flag' ? ' (--service-proxy)' : '';
  row('Service proxy', `${proxy.mode}${chosen}`);
  for (const reason of proxy.reasons) lines.push(`${''.padEnd(16)}stepped down: ${reason}`);
  if (proxy.mode !== 'off') row('Service ports', proxy.servicePorts === null ? 'none programmed yet' : `${proxy.servicePorts} programmed`);

  const mesh = s.mesh;
  if (mesh === null) row('Mesh', 'no topology yet');
  else {
    const nodes = mesh.nodes.length;
    row('Mesh', `${nodes} node${plural(nodes)} in ${mesh.segments.length} segment${plural(mesh.segments.length)} (${mesh.granularity}), ${mesh.peers.length} Peer${plural(mesh.peers.length)}; this node ${mesh.leader ? 'leads' : 'is in'} ${mesh.segment}`);
    lines.push(...table(
      ['SEGMENT', 'LEADER', 'NODES', 'ENDPOINT', 'WIREGUARD IP'],
      // An agent older than dual stack reports wireguardIP alone.
      mesh.segments.map((g) => [g.key, g.leader, g.nodes.join(','), g.endpoint, (g.wireguardIPs ?? [g.wireguardIP]).join(',')]),
    ));
  }

  const wg = s.wireguard;
  if (wg.error !== null) row('WireGuard', `${wg.interface}: unreadable: ${wg.error}`);
  else {
    row('WireGuard', `${wg.interface}, port ${wg.listenPort ?? '?'}, ${wg.peers.length} peer${plural(wg.peers.length)}`);
    lines.push(...table(['PEER', 'ENDPOINT', 'HANDSHAKE', 'RX', 'TX', 'KEY'], wg.peers.map((p) => peerRow(p, ago))));
  }

  row('Syncs', '');
  lines.push(...table(
    ['LOOP', 'LAST SUCCESS', 'LAST FAILURE', 'DUE'],
    s.syncs.map((l) => [l.loop, ago(l.lastSuccess), l.lastFailure === null ? '-' : ago(l.lastFailure.at), l.dueSince === null ? '-' : `since ${ago(l.dueSince)}`]),
  ));
  row('Sources', '');
  lines.push(...table(
    ['RESOURCE', 'STATE', 'LAST SYNC', 'ERROR'],
    s.sources.map((r) => [r.resource, r.state, ago(r.lastSynced), r.lastError ?? '-']),
  ));
  row('Last error', s.lastError === null ? 'none' : `${ago(s.lastError.at)} (${s.lastError.loop}): ${s.lastError.error}`);
  return `${lines.join('\n')}\n`;
}

function peerRow(p: WireGuardPeerStatus, ago: (iso: string | null) => string): string[] {
  const name = p.name === null ? '(unknown)' : p.kind === 'peer' ? `Peer ${p.name}` : p.name;
  return [name, p.endpoint ?? '-', ago(p.latestHandshake), formatBytes(p.rxBytes), formatBytes(p.txBytes), `${p.publicKey.slice(0, 8)}…`];
}

/** Columns padded to their widest cell, indented under the row that introduces them. */
function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  if (rows.length === 0) return [];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((cells) => `  ${cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd());
}

/** `45s`, `3m05s`, `2h07m`, `3d04h`; a negative age (clocks apart) reads as 0s. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor(s / 3600) % 24)}h`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function plural(n: number): string {
  return n === 1 ? '' : 's';
}
