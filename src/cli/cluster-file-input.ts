// What the mesh commands share: read a cluster file strictly (any bad field is an error naming the
// document) and turn the mesh flags into MeshOptions.
import { readFile } from 'node:fs/promises';
import { VXLAN_DEVICE } from '../dataplane/tunnel/tunnel-device.js';
import type { MeshInput, MeshOptions } from '../mesh/types.js';
import type { MeshNode } from '../model/mesh.js';
import { parseClusterFile } from '../sources/file/cluster-file.js';
import { decodeMeshInput } from '../sources/mesh-input.js';
import { DEFAULT_TOPOLOGY_LABEL } from '../sources/node.js';
import { describeProblem } from '../sources/problem.js';
import type { Options, Values } from './command.js';
import { cidrListFlag, integerFlag, parseEncapsulationFlag, parseGranularityFlag, parseSubnetFlag, requiredFlag, stringFlag, switchFlag } from './flags.js';

export const DEFAULT_INTERFACE = 'wirelane0';
export const DEFAULT_PORT = 51820;
export const DEFAULT_SUBNET = '10.4.0.0/16';

export const MESH_OPTIONS: Options = {
  from: { type: 'string' },
  granularity: { type: 'string', default: 'location' },
  subnet: { type: 'string', default: DEFAULT_SUBNET },
  encapsulate: { type: 'string', default: 'never' },
  local: { type: 'string' },
  port: { type: 'string', default: String(DEFAULT_PORT) },
  'topology-label': { type: 'string', default: DEFAULT_TOPOLOGY_LABEL },
  'service-cidr': { type: 'string' },
};

export const MESH_FLAGS_HELP = `  --from FILE               the cluster file (YAML stream of Node and Peer objects)
  --granularity G           location (default), full or cross
  --subnet CIDR             WireGuard addresses of segments (default ${DEFAULT_SUBNET})
  --encapsulate MODE        never (default), crosssubnet or always
  --local[=true|false]      route to pods of the same location (default true)
  --port N                  WireGuard listen port (default ${DEFAULT_PORT})
  --topology-label LABEL    node label naming the location (default ${DEFAULT_TOPOLOGY_LABEL})
  --service-cidr CIDR[,CIDR] the cluster's service ranges: Peers get them in their allowed IPs`;

/** Reads the cluster file; the nodes in it count as fresh (the file has no heartbeat). */
export async function readClusterFileInput(values: Values, now: number): Promise<MeshInput> {
  const path = requiredFlag(values, 'from');
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  const decoded = decodeMeshInput(parseClusterFile(text, path), { topologyLabel: stringFlag(values, 'topology-label') ?? DEFAULT_TOPOLOGY_LABEL });
  const first = decoded.problems[0];
  if (first !== undefined) throw new Error(`${path}: ${first.where ?? ''}: ${describeProblem(first)}`);
  return { nodes: decoded.nodes.map((n): MeshNode => ({ ...n, lastSeen: now })), peers: decoded.peers };
}

export function meshOptionsFrom(values: Values, hostname: string, now: number): MeshOptions {
  return {
    hostname,
    granularity: parseGranularityFlag('granularity', stringFlag(values, 'granularity') ?? 'location'),
    subnet: parseSubnetFlag(stringFlag(values, 'subnet') ?? DEFAULT_SUBNET),
    port: integerFlag('port', stringFlag(values, 'port') ?? String(DEFAULT_PORT), 1, 65535),
    encapsulate: parseEncapsulationFlag(stringFlag(values, 'encapsulate') ?? 'never'),
    local: switchFlag(values, 'local', true),
    wireguardDevice: DEFAULT_INTERFACE,
    tunnelDevice: VXLAN_DEVICE,
    underlayDevice: 'eth0',
    now,
    // Irrelevant here: every node in the file is fresh.
    resyncPeriodSeconds: 30,
    serviceCIDRs: cidrListFlag(values, 'service-cidr'),
  };
}

/** Graph and peer views need some node's perspective; any ready node gives the same segments. */
export function anyNodeName(input: MeshInput): string {
  const name = [...input.nodes].map((n) => n.name).sort()[0];
  if (name === undefined) throw new Error('the cluster file has no nodes');
  return name;
}
