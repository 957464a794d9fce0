// `wirelane services`: the service map one node computes from a cluster file, as data. Strict like
// `topology`: a malformed Service, EndpointSlice or Node address is one error naming the document.
import { readFile } from 'node:fs/promises';
import { type Cidr, type Ip, parseCidr } from '../model/ip.js';
import { serviceMapToJSON } from '../services/json.js';
import type { EndpointSlice, Service, ServiceMapInput, ServiceNode } from '../services/input.js';
import { PROXY_NAME, computeServiceMap } from '../services/service-map.js';
import { decodeEndpointSlice } from '../sources/endpoint-slice.js';
import { type ClusterFileObject, parseClusterFile } from '../sources/file/cluster-file.js';
import { DEFAULT_TOPOLOGY_LABEL, decodeNode } from '../sources/node.js';
import type { KubeObject } from '../sources/objects.js';
import { InvalidObjectError, describeProblem } from '../sources/problem.js';
import { ObjectFields, decodeService } from '../sources/service.js';
import { type Command, UsageError } from './command.js';
import { parseFlag, requiredFlag, stringFlag } from './flags.js';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

// The Node address types a NodePort is reachable on (not Hostname or InternalDNS).
const NODE_ADDRESS_TYPES = new Set(['InternalIP', 'ExternalIP']);

export const services: Command = {
  name: 'services',
  summary: 'print the service map one node computes: service ports, their frontends and endpoints',
  usage: 'wirelane services --from FILE --node NAME [-o json] [--nodeport-addresses CIDR,...]',
  help: `Flags:
  --from FILE                    the cluster file (YAML stream of Node, Service and EndpointSlice objects)
  --node NAME                    the node whose view to print (its status.addresses and zone label)
  -o, --output json              output format (json)
  --nodeport-addresses CIDR,...  serve NodePorts only on node addresses inside these (default: all of
                                 the node's addresses; never loopback)`,
  options: {
    from: { type: 'string' },
    node: { type: 'string' },
    output: { type: 'string', short: 'o', default: 'json' },
    'nodeport-addresses': { type: 'string' },
  },
  async run(values) {
    if (stringFlag(values, 'output') !== 'json') throw new UsageError(`-o: "${stringFlag(values, 'output')}" is not json`);
    const nodeName = requiredFlag(values, 'node');
    const nodePortCIDRs = (stringFlag(values, 'nodeport-addresses') ?? '')
      .split(',')
      .map((c) => c.trim())
      .filter((c) => c !== '')
      .map((c) => parseFlag('nodeport-addresses', c, parseCidr));
    const path = requiredFlag(values, 'from');
    const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    const input = serviceMapInputOf(parseClusterFile(text, path), nodeName, path);
    const map = computeServiceMap(input, { nodePortCIDRs, proxyName: PROXY_NAME });
    process.stdout.write(`${JSON.stringify(serviceMapToJSON(map), null, 2)}\n`);
    return 0;
  },
};

/** Decodes every Service, EndpointSlice and Node of the file; the first bad one is the error. */
export function serviceMapInputOf(objects: readonly ClusterFileObject[], nodeName: string, source: string): ServiceMapInput {
  const services: Service[] = [];
  const slices: EndpointSlice[] = [];
  const clusterCIDRs: Cidr[] = [];
  let node: ServiceNode | undefined;
  for (const { kind, object, where } of objects) {
    try {
      if (kind === 'Service') services.push(decodeService(object));
      if (kind === 'EndpointSlice') {
        const slice = decodeEndpointSlice(object);
        if (slice !== undefined) slices.push(slice);
      }
      if (kind === 'Node') {
        clusterCIDRs.push(...podCIDRsOf(object));
        if (object.metadata?.name === nodeName) node = serviceNodeOf(object);
      }
    } catch (err) {
      if (!(err instanceof InvalidObjectError)) throw err;
      throw new Error(`${source}: ${where}: ${describeProblem(err.problem)}`);
    }
  }
  if (node === undefined) throw new Error(`Node "${nodeName}": not in the cluster`);
  return { services, slices, node, clusterCIDRs };
}

// The mesh decoder already reads pod CIDRs; only its problems with them matter here (a bad mesh
// annotation is `topology`'s business, not this command's).
function podCIDRsOf(object: KubeObject): readonly Cidr[] {
  const { node, problems } = decodeNode(object, { topologyLabel: DEFAULT_TOPOLOGY_LABEL });
  const bad = problems.find((p) => p.field.startsWith('spec.podCIDR'));
  if (bad !== undefined) throw new InvalidObjectError(bad);
  return node.podCIDRs;
}

/** The node's InternalIP and ExternalIP addresses and its zone label. */
export function serviceNodeOf(object: KubeObject): ServiceNode {
  const f = new ObjectFields('Node', object, false);
  const status = f.record('status', object.status);
  const addresses: Ip[] = [];
  f.list('status.addresses', status?.['addresses']).forEach((item, i) => {
    const at = `status.addresses[${i}]`;
    const entry = f.record(at, item) ?? f.fail(at, 'missing');
    if (NODE_ADDRESS_TYPES.has(f.string(`${at}.type`, entry['type']) ?? '')) addresses.push(f.ip(`${at}.address`, entry['address']));
  });
  const zone = f.labels(object)[ZONE_LABEL];
  return { name: object.metadata?.name as string, addresses, ...(zone !== undefined && zone !== '' && { zone }) };
}
