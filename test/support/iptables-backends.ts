// The iptables backends this machine can run (iptables ≥ 1.8 usually ships both), for tests that
// run once per backend.
import { runCommand } from '../../src/host/command.js';
import { type BackendKind, iptablesBackend } from '../../src/dataplane/iptables/backend.js';

export async function availableIptablesBackends(): Promise<BackendKind[]> {
  const kinds: BackendKind[] = [];
  for (const kind of ['nft', 'legacy'] as const) {
    const probe = await runCommand(iptablesBackend(kind).save[4], ['--version'], { allowFailure: true }).catch(() => undefined);
    if (probe?.exitCode === 0) kinds.push(kind);
  }
  return kinds;
}
