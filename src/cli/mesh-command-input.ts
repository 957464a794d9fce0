// What the mesh commands (topology, showconf, graph) share: the mesh flags, the cluster read from a
// file or the API and decoded as the agent decodes it, and the topology of one node's view.
import { VXLAN_DEVICE } from '../dataplane/tunnel/tunnel-device.js';
import { viewpointNode } from '../mesh/peer-host.js';
import { computeTopology } from '../mesh/topology.js';
import type { MeshInput, MeshOptions, Topology } from '../mesh/types.js';
import type { MeshNode } from '../model/mesh.js';
import { decodeMeshInput } from '../sources/mesh-input.js';
import { DEFAULT_TOPOLOGY_LABEL } from '../sources/node.js';
import { locatedProblem, rejectedClaimProblem } from '../sources/problem.js';
import { DEFAULT_LEASE_NAMESPACE, withLeaseLastSeen } from '../sources/lease.js';
import { SOURCE_OPTIONS, clusterOriginOf, readClusterObjects, readHeartbeatLeases, sourceFlagsHelp, strictFlag } from './cluster-objects.js';
import type { Options, Values } from './command.js';
import {
  DEFAULT_RESYNC_PERIOD, durationFlag, integerFlag, parseClaimFlags, parseEncapsulationFlag, parseGranularityFlag, stringFlag, subnetsFlag,
  switchFlag,
} from './flags.js';
import { InputWarnings } from './input-warnings.js';

export const DEFAULT_INTERFACE = 'wirelane0';
export const DEFAULT_PORT = 51820;
export const DEFAULT_SUBNET = '10.4.0.0/16';

export const MESH_OPTIONS: Options = {
  ...SOURCE_OPTIONS,
  granularity: { type: 'string', default: 'location' },
  subnet: { type: 'string', multiple: true },
  encapsulate: { type: 'string', default: 'never' },
  local: { type: 'string' },
  port: { type: 'string', default: String(DEFAULT_PORT) },
  'topology-label': { type: 'string', default: DEFAULT_TOPOLOGY_LABEL },
  'service-cidr': { type: 'string' },
  'allow-wide-claims': { type: 'string' },
  'resync-period': { type: 'string', default: DEFAULT_RESYNC_PERIOD },
  'lease-namespace': { type: 'string', default: DEFAULT_LEASE_NAMESPACE },
};

/** The mesh flags that take true/false and may be given bare (see Command.switches). */
export const MESH_SWITCHES = ['local', 'allow-wide-claims'];

export const MESH_FLAGS_HELP = `${sourceFlagsHelp(28)}
  --granularity G           location (default), full or cross
  --subnet CIDR[,CIDR]      WireGuard addresses of segments, one subnet per family (default
                            ${DEFAULT_SUBNET})
  --encapsulate MODE        never (default), crosssubnet or always
  --local[=true|false]      route to pods of the same location (default true)
  --port N                  WireGuard listen port (default ${DEFAULT_PORT})
  --topology-label LABEL    node label naming the location (default ${DEFAULT_TOPOLOGY_LABEL})
  --service-cidr CIDR[,CIDR]
                            the cluster's service ranges: no Peer or location may claim them
  --allow-wide-claims[=true]
                            let Peers and locations claim prefixes wider than /8 (IPv4) or /16
                            (IPv6), default routes included (default false)
  --resync-period DURATION  the agents' resync period (default ${DEFAULT_RESYNC_PERIOD}): a live node whose
                            last heartbeat is 2 × this old is not ready, as the agents judge it
  --lease-namespace NS      where the agents' heartbeat Leases live (default ${DEFAULT_LEASE_NAMESPACE})`;

export interface MeshCommandInput {
  readonly input: MeshInput;
  /** Everything but the node whose view it is; `now` is when the command started, before the read. */
  readonly options: Omit<MeshOptions, 'hostname'>;
  readonly warnings: InputWarnings;
  readonly strict: boolean;
  /** Where each Node and Peer stands in a file (`Peer/laptop` → `document 5 (Peer "laptop")`). */
  readonly located: ReadonlyMap<string, string>;
}

/**
 * Parses the mesh flags (a bad one fails before anything is read), reads the cluster and decodes it,
 * one warning per bad value. A file has no heartbeats: its nodes count as fresh. Live nodes keep
 * the latest heartbeat their agents wrote (last-seen, their Leases' renew times), judged by the
 * agents' readiness rule against this host's clock (a one-off read cannot watch heartbeats change
 * as an agent does: mesh/liveness.ts).
 */
export async function readMeshInput(values: Values): Promise<MeshCommandInput> {
  const options = meshOptionsOf(values, Math.floor(Date.now() / 1000));
  const origin = clusterOriginOf(values);
  const [objects, leases] = await Promise.all([
    readClusterObjects(origin, ['Node', 'Peer']),
    readHeartbeatLeases(origin, stringFlag(values, 'lease-namespace') ?? DEFAULT_LEASE_NAMESPACE),
  ]);
  const decoded = decodeMeshInput(objects, { topologyLabel: stringFlag(values, 'topology-label') ?? DEFAULT_TOPOLOGY_LABEL });
  const warnings = new InputWarnings(origin);
  warnings.report(decoded.problems);
  const nodes = origin.kind === 'file' ? decoded.nodes.map((n): MeshNode => ({ ...n, lastSeen: options.now })) : withLeaseLastSeen(decoded.nodes, leases);
  const located = new Map(objects.flatMap((o) => (o.where === undefined ? [] : [[`${o.kind}/${o.object.metadata?.name ?? ''}`, o.where] as const])));
  return { input: { nodes, peers: decoded.peers }, options, warnings, strict: strictFlag(values), located };
}

/** `hostname`'s view; claims the core dropped are warnings too (the agent logs them so). */
export function meshTopologyOf(mesh: MeshCommandInput, hostname: string): Topology {
  const t = computeTopology(mesh.input, { ...mesh.options, hostname });
  mesh.warnings.report(t.rejectedClaims.map((c) => locatedProblem(rejectedClaimProblem(c), mesh.located.get(`${c.kind}/${c.name}`))));
  mesh.warnings.failIfStrict(mesh.strict);
  return t;
}

/** The mesh flags as options; `wirelane connect` shares them. */
export function meshOptionsOf(values: Values, now: number): Omit<MeshOptions, 'hostname'> {
  return {
    granularity: parseGranularityFlag('granularity', stringFlag(values, 'granularity') ?? 'location'),
    subnets: subnetsFlag(values, DEFAULT_SUBNET),
    port: integerFlag('port', stringFlag(values, 'port') ?? String(DEFAULT_PORT), 1, 65535),
    encapsulate: parseEncapsulationFlag(stringFlag(values, 'encapsulate') ?? 'never'),
    local: switchFlag(values, 'local', true),
    wireguardDevice: DEFAULT_INTERFACE,
    tunnelDevice: VXLAN_DEVICE,
    underlayDevice: 'eth0',
    now,
    resyncPeriodSeconds: durationFlag('resync-period', stringFlag(values, 'resync-period') ?? DEFAULT_RESYNC_PERIOD) / 1000,
    ...parseClaimFlags(values),
  };
}

/** Graph and Peer views need some node's perspective; any ready node gives the same segments. */
export function anyReadyNode(mesh: MeshCommandInput): string {
  const { now, resyncPeriodSeconds } = mesh.options;
  const name = viewpointNode(mesh.input, now, resyncPeriodSeconds);
  if (name === undefined) throw new Error(mesh.input.nodes.length === 0 ? 'the cluster has no nodes' : 'the cluster has no ready node');
  return name;
}
