// Gate for tests on the real kernel: skip with the reason on a developer machine without root or a
// tool, fail loudly in CI (CI=true), where a missing capability must never look green.
import { type ToolCheck, sandboxUnsupportedReason } from '../../src/sandbox/support.js';

export { AGENT_TOOLS, IPTABLES_TOOLS, WIREGUARD_TOOLS } from '../../src/sandbox/support.js';

/** The value for `test(name, { skip }, …)`: false when the tests can run. */
export async function capabilitySkip(what: string, tools: readonly ToolCheck[] = []): Promise<string | false> {
  const reason = await sandboxUnsupportedReason(tools);
  if (reason === undefined) return false;
  if (process.env['CI'] === 'true') throw new Error(`CI=true, but ${what} cannot run: ${reason}`);
  return `${what} skipped: ${reason}`;
}
