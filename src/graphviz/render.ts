// DOT → SVG through Graphviz's `dot`, when installed.
import { runCommand } from '../host/command.js';

export async function renderSvg(dot: string): Promise<string> {
  try {
    return (await runCommand('dot', ['-Tsvg'], { input: dot, timeoutMs: 10_000 })).stdout;
  } catch (err) {
    if (/ENOENT|could not be started|not found/i.test((err as Error).message)) {
      throw new Error('SVG needs Graphviz: install the graphviz package, or use --format dot');
    }
    throw err;
  }
}
