// The node flags the installed entry point (bin/wirelane.js) starts the agent with, from its #! line:
// benchmarks run the agent as it is installed.
import { readFileSync } from 'node:fs';

export function agentNodeFlags(): string[] {
  const shebang = readFileSync(new URL('../bin/wirelane.js', import.meta.url), 'utf8').split('\n', 1)[0]!;
  return shebang.split(/\s+/).filter((word) => word.startsWith('--'));
}
