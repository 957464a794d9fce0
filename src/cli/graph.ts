import { renderGraph } from '../mesh/graph.js';
import { computeTopology } from '../mesh/topology.js';
import { renderSvg } from '../graphviz/render.js';
import type { Command } from './command.js';
import { MESH_FLAGS_HELP, MESH_OPTIONS, anyNodeName, meshOptionsFrom, readClusterFileInput } from './cluster-file-input.js';
import { choiceFlag, stringFlag } from './flags.js';

export const graph: Command = {
  name: 'graph',
  summary: 'draw the mesh as a Graphviz graph (DOT, or SVG through Graphviz)',
  usage: 'wirelane graph --from FILE [--format dot|svg] [mesh flags]',
  help: `Flags:
  --format dot|svg          DOT text (default) or SVG rendered by Graphviz's dot
${MESH_FLAGS_HELP}`,
  switches: ['local'],
  options: { ...MESH_OPTIONS, format: { type: 'string', default: 'dot' } },
  async run(values) {
    const format = choiceFlag('format', stringFlag(values, 'format') ?? 'dot', ['dot', 'svg'] as const);
    const now = Math.floor(Date.now() / 1000);
    const input = await readClusterFileInput(values, now);
    const dot = renderGraph(computeTopology(input, meshOptionsFrom(values, anyNodeName(input), now)));
    process.stdout.write(format === 'svg' ? await renderSvg(dot) : dot);
    return 0;
  },
};
