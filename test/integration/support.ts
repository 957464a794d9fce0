// Integration tests need root and the kernel features of this machine; in CI a missing one fails.
import type { TestContext } from 'node:test';
import { sandboxUnsupportedReason } from '../../src/sandbox/index.js';

/** Returns true (after marking the test skipped) when it cannot run here; throws in CI. */
export async function skipUnlessSupported(t: TestContext): Promise<boolean> {
  const reason = await sandboxUnsupportedReason();
  if (reason === undefined) return false;
  if (process.env['CI'] === 'true') throw new Error(`integration test cannot run: ${reason}`);
  t.skip(reason);
  return true;
}
