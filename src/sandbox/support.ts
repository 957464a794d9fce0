// Whether this machine can build a sandbox: the demo and the integration tests ask first.
import { runCommand } from '../host/command.js';

const TOOLS: readonly (readonly [string, readonly string[]])[] = [
  ['ip', ['-V']],
  ['sysctl', ['--version']],
  ['nft', ['--version']],
];

/** Why a sandbox cannot be built here, or undefined when it can. */
export async function sandboxUnsupportedReason(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root';
  for (const [tool, args] of TOOLS) {
    try {
      await runCommand(tool, args);
    } catch {
      return `the "${tool}" command is missing`;
    }
  }
  return undefined;
}
