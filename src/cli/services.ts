// `wirelane services`: the service map one node computes from a cluster file or the live cluster, as
// data. Lenient as the agent is: a malformed Service or EndpointSlice is left out, a bad Node pod
// CIDR or address is skipped, each with one warning; --strict makes any of them a failure.
import { type Cidr, type Ip } from '../model/ip.js';
import { serviceMapToJSON } from '../services/json.js';
import type { ServiceMapInput, ServiceNode } from '../services/input.js';
import { PROXY_NAME, computeServiceMap } from '../services/service-map.js';
import { DEFAULT_TOPOLOGY_LABEL, decodeNode } from '../sources/node.js';
import type { KubeObject } from '../sources/objects.js';
import { InvalidObjectError, type LocatedProblem, type Problem, locatedProblem } from '../sources/problem.js';
import { ObjectFields } from '../sources/service.js';
import { decodeServiceInput } from '../sources/service-input.js';
import type { SourceObject } from '../sources/source.js';
import { SOURCE_OPTIONS, clusterOriginOf, readClusterObjects, sourceFlagsHelp, strictFlag } from './cluster-objects.js';
import { type Command, UsageError } from './command.js';
import { cidrListFlag, requiredFlag, stringFlag } from './flags.js';
import { InputWarnings } from './input-warnings.js';

export const ZONE_LABEL = 'topology.kubernetes.io/zone';

// The Node address types a NodePort is reachable on (not Hostname or InternalDNS).
const NODE_ADDRESS_TYPES = new Set(['InternalIP', 'ExternalIP']);

export const services: Command = {
  name: 'services',
  summary: 'print the service map one node computes: service ports, their frontends and endpoints',
  usage: 'wirelane services --node NAME [--from FILE | --kubeconfig FILE] [-o json] [--nodeport-addresses CIDR,...]',
  help: `Flags:
  --node NAME                    the node whose view to print (its status.addresses and zone label)
${sourceFlagsHelp(33)}
  -o, --output json              output format (json)
  --nodeport-addresses CIDR,...  serve NodePorts only on node addresses inside these (default: all of
                                 the node's addresses; never loopback)`,
  options: {
    ...SOURCE_OPTIONS,
    node: { type: 'string' },
    output: { type: 'string', short: 'o', default: 'json' },
    'nodeport-addresses': { type: 'string' },
  },
  async run(values) {
    if (stringFlag(values, 'output') !== 'json') throw new UsageError(`-o: "${stringFlag(values, 'output')}" is not json`);
    const nodeName = requiredFlag(values, 'node');
    const nodePortCIDRs = cidrListFlag(values, 'nodeport-addresses');
    const origin = clusterOriginOf(values);
    const objects = await readClusterObjects(origin, ['Node', 'Service', 'EndpointSlice']);
    const { input, problems } = serviceMapInputOf(objects, nodeName);
    const warnings = new InputWarnings(origin);
    warnings.report(problems);
    warnings.failIfStrict(strictFlag(values));
    const map = computeServiceMap(input, { nodePortCIDRs, proxyName: PROXY_NAME });
    process.stdout.write(`${JSON.stringify(serviceMapToJSON(map), null, 2)}\n`);
    return 0;
  },
};

export interface DecodedServiceMapInput {
  readonly input: ServiceMapInput;
  /** What was skipped, in the order of the objects. */
  readonly problems: readonly LocatedProblem[];
}

/**
 * Decodes Services and EndpointSlices as the agent does (a bad one is left out), every Node's pod
 * CIDRs (the cluster's, for masquerading) and `nodeName`'s addresses and zone. Its other mesh
 * annotations are `topology`'s business, not this command's. Throws only when the node is missing.
 */
export function serviceMapInputOf(objects: readonly SourceObject[], nodeName: string): DecodedServiceMapInput {
  const decoded = decodeServiceInput(objects);
  const problems: LocatedProblem[] = [];
  const clusterCIDRs: Cidr[] = [];
  let node: ServiceNode | undefined;
  for (const { kind, object, where } of objects) {
    if (kind === 'Node') {
      const { node: meshNode, problems: nodeProblems } = decodeNode(object, { topologyLabel: DEFAULT_TOPOLOGY_LABEL });
      clusterCIDRs.push(...meshNode.podCIDRs);
      problems.push(...nodeProblems.filter((p) => p.field.startsWith('spec.podCIDR')).map((p) => locatedProblem(p, where)));
      if (object.metadata?.name === nodeName) {
        const own = serviceNodeOf(object);
        node = own.node;
        problems.push(...own.problems.map((p) => locatedProblem(p, where)));
      }
    }
  }
  if (node === undefined) throw new Error(`Node "${nodeName}": not in the cluster`);
  return { input: { services: decoded.services, slices: decoded.slices, node, clusterCIDRs }, problems: [...decoded.problems, ...problems] };
}

/** The node's InternalIP and ExternalIP addresses and its zone label; a bad address is skipped. */
export function serviceNodeOf(object: KubeObject): { node: ServiceNode; problems: Problem[] } {
  const problems: Problem[] = [];
  const addresses: Ip[] = [];
  const orSkip = (read: () => void): void => {
    try {
      read();
    } catch (err) {
      if (!(err instanceof InvalidObjectError)) throw err;
      problems.push(err.problem);
    }
  };
  orSkip(() => {
    const f = new ObjectFields('Node', object, false);
    f.list('status.addresses', f.record('status', object.status)?.['addresses']).forEach((item, i) =>
      orSkip(() => {
        const at = `status.addresses[${i}]`;
        const entry = f.record(at, item) ?? f.fail(at, 'missing');
        if (NODE_ADDRESS_TYPES.has(f.string(`${at}.type`, entry['type']) ?? '')) addresses.push(f.ip(`${at}.address`, entry['address']));
      }),
    );
  });
  const zone = object.metadata?.labels?.[ZONE_LABEL];
  return { node: { name: object.metadata?.name ?? '', addresses, ...(typeof zone === 'string' && zone !== '' && { zone }) }, problems };
}
