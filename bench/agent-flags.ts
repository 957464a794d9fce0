// How the installed entry point (bin/wirelane.js) starts the agent, from its #! line (`env -S NAME=VALUE
// node --flag ...`): benchmarks run the agent as it is installed.
import { readFileSync } from 'node:fs';

function shebangWords(): string[] {
  const shebang = readFileSync(new URL('../bin/wirelane.js', import.meta.url), 'utf8').split('\n', 1)[0]!;
  return shebang.split(/\s+/);
}

/** The node flags. */
export function agentNodeFlags(): string[] {
  return shebangWords().filter((word) => word.startsWith('--'));
}

/** The environment it sets (malloc tunables). */
export function agentEnv(): Record<string, string> {
  return Object.fromEntries(
    shebangWords()
      .filter((word) => /^[A-Z_][A-Z0-9_]*=/.test(word))
      .map((word) => [word.slice(0, word.indexOf('=')), word.slice(word.indexOf('=') + 1)]),
  );
}
