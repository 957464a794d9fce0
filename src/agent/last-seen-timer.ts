// last-seen on a timer, for as long as an agent that predates Lease heartbeats may read it
// (sources/last-seen-readers.ts): every half resync period, as those agents wrote it themselves, so
// they never age an upgraded node. Once every node announces Leases, it writes nothing: a Node
// write goes to every agent of the cluster.
import { errorLine } from '../observability/first-line.js';
import type { Logger } from '../observability/logger.js';
import type { AgentMetrics } from '../observability/metrics.js';
import { lastSeenAnnouncing, lastSeenReaders } from '../sources/last-seen-readers.js';
import type { ClusterSource } from '../sources/source.js';

export interface LastSeenTimerDeps {
  readonly hostname: string;
  /** Half the resync period. */
  readonly everyMs: number;
  readonly source: ClusterSource;
  readonly log: Logger;
  readonly metrics: AgentMetrics;
}

export class LastSeenTimer {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  /** The readers last logged, to log a change once. */
  private readers = '';
  private failing = false;

  constructor(private readonly deps: LastSeenTimerDeps) {}

  /** Only where this agent publishes its Node and heartbeats through Leases. */
  start(): void {
    if (this.deps.source.publisher === undefined || this.deps.source.heartbeats === undefined) return;
    this.timer = setInterval(() => {
      this.writing ??= this.tick().finally(() => (this.writing = undefined));
    }, this.deps.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.writing;
  }

  private async tick(): Promise<void> {
    const { deps } = this;
    const nodes = deps.source.snapshot().flatMap((o) => (o.kind === 'Node' ? [o.object] : []));
    const readers = lastSeenReaders(nodes, deps.hostname);
    deps.metrics.lastSeenReaders.set(readers.length);
    if (readers.join() !== this.readers) {
      if (readers.length > 0) deps.log.info(`last-seen: ${readers.join(', ')} run an agent that predates Lease heartbeats: writing last-seen every ${deps.everyMs / 1000}s for it`);
      else deps.log.info('last-seen: every node announces Lease heartbeats: last-seen no longer written on a timer');
      this.readers = readers.join();
    }
    if (readers.length === 0) return;
    const publisher = deps.source.publisher;
    try {
      if (await publisher?.publishNode(deps.hostname, lastSeenAnnouncing(Math.floor(Date.now() / 1000)))) deps.metrics.countWrites('annotation', 1);
      if (this.failing) deps.log.info('last-seen: written again');
      this.failing = false;
    } catch (err) {
      deps.metrics.errors.inc({ step: 'annotate' });
      const line = `last-seen: ${errorLine(err)}; the next tick retries`;
      if (this.failing) deps.log.debug(line);
      else deps.log.warn(line);
      this.failing = true;
    }
  }
}
