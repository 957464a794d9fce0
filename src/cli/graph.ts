import { renderGraph } from '../mesh/graph.js';
import { renderSvg } from '../graphviz/render.js';
import type { Command } from './command.js';
import { MESH_FLAGS_HELP, MESH_OPTIONS, MESH_SWITCHES, anyReadyNode, meshTopologyOf, readMeshInput } from './mesh-command-input.js';
import { choiceFlag, stringFlag } from './flags.js';

export const graph: Command = {
  name: 'graph',
  summary: 'draw the mesh as a Graphviz graph (DOT, or SVG through Graphviz)',
  usage: 'wirelane graph [--from FILE | --kubeconfig FILE] [--format dot|svg] [mesh flags]',
  help: `Flags:
  --format dot|svg          DOT text (default) or SVG rendered by Graphviz's dot
${MESH_FLAGS_HELP}`,
  switches: MESH_SWITCHES,
  options: { ...MESH_OPTIONS, format: { type: 'string', default: 'dot' } },
  async run(values) {
    const format = choiceFlag('format', stringFlag(values, 'format') ?? 'dot', ['dot', 'svg'] as const);
    const mesh = await readMeshInput(values);
    const dot = renderGraph(meshTopologyOf(mesh, anyReadyNode(mesh)));
    process.stdout.write(format === 'svg' ? await renderSvg(dot) : dot);
    return 0;
  },
};
