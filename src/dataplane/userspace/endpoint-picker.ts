// Which endpoint a new connection or UDP flow goes to: round-robin over a shuffled list, with
// ClientIP affinity, as kube-proxy's userspace LoadBalancerRR did. The clock is an argument, so
// the choice is testable without waiting.
import type { ServiceBackend } from '../../model/service.js';
import { formatBackend } from '../../services/json.js';

interface Affinity {
  readonly endpoint: string;
  lastUsedMs: number;
}

/** Affinity entries are swept at most this often, however long the affinity timeout is. */
const MAX_SWEEP_INTERVAL_MS = 60_000;

export class EndpointPicker {
  private endpoints: readonly ServiceBackend[] = [];
  private byId = new Map<string, ServiceBackend>();
  private nextIndex = 0;
  private affinityMs: number | undefined;
  private readonly affinity = new Map<string, Affinity>();
  private lastSweepMs = 0;

  constructor(private readonly random: () => number = Math.random) {}

  get size(): number {
    return this.endpoints.length;
  }

  /** The endpoints in choice order (for tests and diagnostics). */
  get order(): readonly ServiceBackend[] {
    return this.endpoints;
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  /**
   * Replaces the endpoint list and the affinity timeout (undefined: no affinity). An unchanged set
   * keeps its order and position, so round-robin carries on; a changed one is reshuffled (every
   * node starting at the same endpoint would load it first) and affinities to removed endpoints
   * are forgotten. Returns the ids (`ip:port`) of the removed endpoints.
   */
  update(endpoints: readonly ServiceBackend[], affinityTimeoutMs: number | undefined): string[] {
    const byId = new Map(endpoints.map((e) => [formatBackend(e), e] as const));
    const removed = [...this.byId.keys()].filter((id) => !byId.has(id));
    const sameSet = removed.length === 0 && byId.size === this.byId.size;
    if (!sameSet) {
      this.endpoints = shuffled([...byId.values()], this.random);
      this.byId = byId;
      this.nextIndex = 0;
      for (const [client, entry] of this.affinity) if (!byId.has(entry.endpoint)) this.affinity.delete(client);
    }
    if (affinityTimeoutMs === undefined) this.affinity.clear();
    this.affinityMs = affinityTimeoutMs;
    return removed;
  }

  /**
   * The endpoint for a new connection from `clientIp`, undefined when there is none. With affinity,
   * a client keeps its endpoint while it uses it within the timeout; `resetAffinity` (a retry after
   * a failed dial) moves it on to the next endpoint in turn.
   */
  next(clientIp: string, nowMs: number, resetAffinity = false): ServiceBackend | undefined {
    if (this.endpoints.length === 0) return undefined;
    const ttl = this.affinityMs;
    if (ttl !== undefined) {
      this.sweep(nowMs, ttl);
      const sticky = this.affinity.get(clientIp);
      if (!resetAffinity && sticky !== undefined && nowMs - sticky.lastUsedMs < ttl) {
        const endpoint = this.byId.get(sticky.endpoint);
        if (endpoint !== undefined) {
          sticky.lastUsedMs = nowMs;
          return endpoint;
        }
      }
    }
    const endpoint = this.endpoints[this.nextIndex] as ServiceBackend;
    this.nextIndex = (this.nextIndex + 1) % this.endpoints.length;
    if (ttl !== undefined) this.affinity.set(clientIp, { endpoint: formatBackend(endpoint), lastUsedMs: nowMs });
    return endpoint;
  }

  /** Drops a client's affinity (its endpoint failed it), so its next connection takes the next turn. */
  forget(clientIp: string): void {
    this.affinity.delete(clientIp);
  }

  /** Clients that currently have an affinity entry. */
  get affinityCount(): number {
    return this.affinity.size;
  }

  private sweep(nowMs: number, ttl: number): void {
    if (nowMs - this.lastSweepMs < Math.min(ttl, MAX_SWEEP_INTERVAL_MS)) return;
    this.lastSweepMs = nowMs;
    for (const [client, entry] of this.affinity) if (nowMs - entry.lastUsedMs >= ttl) this.affinity.delete(client);
  }
}

function shuffled<T>(list: T[], random: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j] as T, list[i] as T];
  }
  return list;
}
