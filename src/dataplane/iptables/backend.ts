// Which iptables implementation to drive. The agent must write into the same backend as the
// host's `iptables` command: rules written with iptables-legacy are invisible to iptables-nft and
// vice versa, and mixing them makes packets traverse two rule sets that nobody sees together.
import { type CommandOptions, type CommandResult, runCommand } from '../../host/command.js';
import type { Family } from '../../model/ip.js';
import { firstLine } from '../../observability/first-line.js';

/** Runs a host command; `runCommand` in production, the same signature anywhere else. */
export type CommandRunner = (file: string, args: readonly string[], opts?: CommandOptions) => Promise<CommandResult>;

export type BackendKind = 'nft' | 'legacy';

export interface IptablesBackend {
  readonly kind: BackendKind;
  /** `iptables-nft-save` / `ip6tables-nft-save`, ... per family. */
  readonly save: Readonly<Record<Family, string>>;
  readonly restore: Readonly<Record<Family, string>>;
}

function toolsNamed(kind: BackendKind, infix: string): IptablesBackend {
  return {
    kind,
    save: { 4: `iptables${infix}-save`, 6: `ip6tables${infix}-save` },
    restore: { 4: `iptables${infix}-restore`, 6: `ip6tables${infix}-restore` },
  };
}

/** The explicitly suffixed tools of a backend (iptables ≥ 1.8 installs both sets). */
export function iptablesBackend(kind: BackendKind): IptablesBackend {
  return toolsNamed(kind, kind === 'nft' ? '-nft' : '-legacy');
}

/**
 * Reads `iptables -V`: "iptables v1.8.9 (nf_tables)" or "iptables v1.8.9 (legacy)". Versions
 * before 1.8 print no backend; they are legacy and have no suffixed tools, so the plain names are
 * the right ones.
 */
export function backendFromVersion(versionText: string): IptablesBackend {
  const text = versionText.trim();
  if (!/^iptables v\d/.test(text)) throw new Error(`iptables -V: unexpected output "${firstLine(text)}"`);
  if (text.includes('(nf_tables)')) return iptablesBackend('nft');
  if (text.includes('(legacy)')) return iptablesBackend('legacy');
  return toolsNamed('legacy', '');
}

export async function detectIptablesBackend(run: CommandRunner = runCommand, netns?: string): Promise<IptablesBackend> {
  const { stdout } = await run('iptables', ['-V'], netns === undefined ? {} : { netns });
  return backendFromVersion(stdout);
}

/** Each runner's answer per network namespace ('' for the caller's). */
const detections = new WeakMap<CommandRunner, Map<string, Promise<IptablesBackend>>>();

/**
 * The host's backend, asked once per process (per runner and namespace) and shared by every owner's
 * chains: the mesh's, the service proxy's, the removal of other modes' leftovers. A detection that
 * failed is not kept; the next use asks again. A backend switched under a running agent is found
 * at its next start, as before, when each owner asked once.
 */
export function sharedIptablesBackend(run: CommandRunner = runCommand, netns?: string): Promise<IptablesBackend> {
  let byNetns = detections.get(run);
  if (byNetns === undefined) {
    byNetns = new Map();
    detections.set(run, byNetns);
  }
  const key = netns ?? '';
  const known = byNetns.get(key);
  if (known !== undefined) return known;
  const detection = detectIptablesBackend(run, netns);
  const cache = byNetns;
  cache.set(key, detection);
  detection.catch(() => {
    if (cache.get(key) === detection) cache.delete(key);
  });
  return detection;
}
