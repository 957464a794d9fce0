// `--service-proxy iptables`: the service map as kube-proxy-style iptables rules (rules.ts),
// programmed through the iptables dataplane under its own chain owner, plus the UDP conntrack
// deletions a change calls for (services/stale-udp-flows.ts).
import { type ConntrackFilter, deleteConntrack } from '../../host/conntrack.js';
import { formatIp } from '../../model/ip.js';
import type { ServiceChanges } from '../../services/changes.js';
import type { ServiceProxy, ServiceProxyReport } from '../service-proxy.js';
import type { CommandRunner, IptablesBackend } from '../iptables/backend.js';
import { type FamilyRestore, type IptablesApplyReport, IptablesChains } from '../iptables/chains.js';
import { SerialQueue } from '../serial-queue.js';
import { SERVICE_OWNER } from './chain-names.js';
import { ServiceRuleCache } from './rule-cache.js';

export interface IptablesServiceProxyOptions {
  /** Program the rules (and delete conntrack entries) inside this named network namespace. */
  readonly netns?: string;
  /** Default: the backend of the host's `iptables` command. */
  readonly backend?: IptablesBackend;
  /** Runs iptables-save/-restore; the host runner by default. */
  readonly run?: CommandRunner;
  /** Deletes conntrack entries; `deleteConntrack` by default. */
  readonly deleteConntrack?: typeof deleteConntrack;
  /** Between full read-and-compare syncs (which also repair what others changed); kube-proxy's hour by default. */
  readonly fullSyncPeriodMs?: number;
  /** Milliseconds on a monotonic clock, for the full-sync period; `performance.now` by default. */
  readonly now?: () => number;
}

export interface IptablesServiceProxyReport extends ServiceProxyReport {
  /** iptables-restore calls: 0 when nothing changed, at most one per family. */
  readonly written: number;
  /** What each restore wrote (its input and the chains it rewrote or deleted). */
  readonly restores: readonly FamilyRestore[];
  /** `full`: compared with iptables-save; `partial`: written from the proxy's record, nothing read. */
  readonly sync: IptablesApplyReport['sync'];
  /** Partial restores that failed and were repaired at once by a full sync. */
  readonly recovered: IptablesApplyReport['recovered'];
  /** conntrack deletions run for UDP flows that lost their endpoint or service. */
  readonly conntrackDeletions: number;
}

/** conntrack deletions that failed; the rules are in place, and the next apply retries them (the change stays pending). */
export class ConntrackFlushError extends Error {
  override readonly name = 'ConntrackFlushError';
}

export class IptablesServiceProxy implements ServiceProxy {
  readonly mode = 'iptables' as const;
  private readonly chains: IptablesChains;
  private readonly netns: string | undefined;
  private readonly deleteEntries: typeof deleteConntrack;
  private readonly queue = new SerialQueue();
  private readonly rules = new ServiceRuleCache();

  constructor(opts: IptablesServiceProxyOptions = {}) {
    this.netns = opts.netns;
    this.deleteEntries = opts.deleteConntrack ?? deleteConntrack;
    this.chains = new IptablesChains({
      owner: SERVICE_OWNER,
      ...(opts.netns === undefined ? {} : { netns: opts.netns }),
      ...(opts.backend === undefined ? {} : { backend: opts.backend }),
      ...(opts.run === undefined ? {} : { run: opts.run }),
      ...(opts.fullSyncPeriodMs === undefined ? {} : { fullSyncPeriodMs: opts.fullSyncPeriodMs }),
      ...(opts.now === undefined ? {} : { now: opts.now }),
    });
  }

  /** Writes the chains that differ from the last apply, then deletes the change's stale UDP conntrack entries. */
  apply(changes: ServiceChanges): Promise<IptablesServiceProxyReport> {
    return this.queue.run(async () => {
      let report: IptablesApplyReport;
      try {
        report = await this.chains.apply(this.rules.rulesFor(changes));
      } catch (err) {
        this.rules.forget();
        throw err;
      }
      const flushes = changes.staleUdpFlows;
      const failures: string[] = [];
      // One at a time: each is a short process, and a burst of them gains nothing on one table.
      for (const filter of flushes) {
        try {
          await this.deleteEntries(filter, this.netns === undefined ? {} : { netns: this.netns });
        } catch (err) {
          failures.push(`${describeFilter(filter)}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (failures.length > 0) {
        throw new ConntrackFlushError(`service proxy (iptables): ${failures.length} of ${flushes.length} UDP conntrack deletions failed, retried on the next apply; first: ${failures[0]}`);
      }
      const { written, restores, sync, recovered } = report;
      const warnings = recovered.map((r) => `service proxy (iptables): IPv${r.family} partial restore failed, repaired by a full sync: ${r.error}`);
      return { written, restores, sync, recovered, warnings, conntrackDeletions: flushes.length };
    });
  }

  /** Removes every WLSVC- chain and every wirelane-svc: jump, also those of a crashed run. */
  cleanup(): Promise<void> {
    return this.queue.run(async () => {
      await this.chains.cleanup();
    });
  }
}

function describeFilter(f: ConntrackFilter): string {
  const parts = [`${f.protocol}/IPv${f.family}`];
  if (f.origDst !== undefined) parts.push(`to ${formatIp(f.origDst)}`);
  if (f.origDstPort !== undefined) parts.push(`port ${f.origDstPort}`);
  if (f.replySrc !== undefined) parts.push(`from endpoint ${formatIp(f.replySrc)}`);
  return parts.join(' ');
}
