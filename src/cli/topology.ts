import { topologyToJSON } from '../mesh/json.js';
import { type Command, UsageError } from './command.js';
import { MESH_FLAGS_HELP, MESH_OPTIONS, MESH_SWITCHES, meshTopologyOf, readMeshInput } from './mesh-command-input.js';
import { requiredFlag, stringFlag } from './flags.js';

export const topology: Command = {
  name: 'topology',
  summary: 'print the mesh as one node computes it: segments, peers, routes and rules',
  usage: 'wirelane topology --node NAME [--from FILE | --kubeconfig FILE] [-o json] [mesh flags]',
  help: `Flags:
  --node NAME               the node whose view to print
  -o, --output json         output format (json)
${MESH_FLAGS_HELP}`,
  switches: MESH_SWITCHES,
  options: { ...MESH_OPTIONS, node: { type: 'string' }, output: { type: 'string', short: 'o', default: 'json' } },
  async run(values) {
    if (stringFlag(values, 'output') !== 'json') throw new UsageError(`-o: "${stringFlag(values, 'output')}" is not json`);
    const node = requiredFlag(values, 'node');
    const t = meshTopologyOf(await readMeshInput(values), node);
    process.stdout.write(`${JSON.stringify(topologyToJSON(t), null, 2)}\n`);
    return 0;
  },
};
