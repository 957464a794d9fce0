// Gate for tests that build network namespaces: skip with the reason on a developer machine
// without root, fail loudly in CI (CI=true), where a missing capability must never look green.
import { sandboxUnsupportedReason } from '../../src/sandbox/index.js';

export async function sandboxSkip(): Promise<string | false> {
  const reason = await sandboxUnsupportedReason();
  if (reason === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`CI=true, but sandbox tests cannot run: ${reason}`);
  return `sandbox unavailable: ${reason}`;
}
