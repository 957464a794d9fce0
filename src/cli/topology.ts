import { topologyToJSON } from '../mesh/json.js';
import { computeTopology } from '../mesh/topology.js';
import { type Command, UsageError } from './command.js';
import { MESH_FLAGS_HELP, MESH_OPTIONS, meshOptionsFrom, readClusterFileInput } from './cluster-file-input.js';
import { requiredFlag, stringFlag } from './flags.js';

export const topology: Command = {
  name: 'topology',
  summary: 'print the mesh as one node computes it: segments, peers, routes and rules',
  usage: 'wirelane topology --from FILE --node NAME [-o json] [mesh flags]',
  help: `Flags:
  --node NAME               the node whose view to print
  -o, --output json         output format (json)
${MESH_FLAGS_HELP}`,
  switches: ['local'],
  options: { ...MESH_OPTIONS, node: { type: 'string' }, output: { type: 'string', short: 'o', default: 'json' } },
  async run(values) {
    if (stringFlag(values, 'output') !== 'json') throw new UsageError(`-o: "${stringFlag(values, 'output')}" is not json`);
    const now = Math.floor(Date.now() / 1000);
    const input = await readClusterFileInput(values, now);
    const t = computeTopology(input, meshOptionsFrom(values, requiredFlag(values, 'node'), now));
    process.stdout.write(`${JSON.stringify(topologyToJSON(t), null, 2)}\n`);
    return 0;
  },
};
