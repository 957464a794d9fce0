// Programs the mesh's routes and policy rules, touching only what carries the agent's own route
// protocol number: read what is ours, diff, write the difference in one `ip -batch` per family.
// A route someone deleted comes back on the next apply; anyone else's route or rule, even one
// with the same destination, is never changed (the kernel refuses our `add` instead).
import { type IpCommand, readIpJson, readIpJsonBatch } from '../../host/ip.js';
import { ADDRESSING_READS, type Addressing, addressingOf, MAIN_ROUTES_6 } from '../../host/network-state.js';
import { listLinks, parseLink } from '../../host/links.js';
import { parseRoute, type Route as KernelRoute } from '../../host/routes.js';
import { parseRule, type Rule as KernelRule } from '../../host/rules.js';
import type { Family } from '../../model/ip.js';
import type { Route, Rule } from '../../model/route.js';
import { runForcedBatch } from '../../host/batch.js';
import { PartialApplyError, type WriteFailure } from '../partial-apply.js';
import { SerialQueue } from '../serial-queue.js';
import { planRoutes, type PlannedWrite, type WantedRoutes, wantedRoutes } from './route-plan.js';
import { planRules } from './rule-plan.js';

/**
 * 0x57 ('W'): unassigned in the kernel's rtnetlink.h and iproute2's rt_protos, and distinct from
 * what other network agents use (Calico 80, BIRD 12, zebra 11, keepalived 18, babel 42, ...).
 */
export const DEFAULT_ROUTE_PROTOCOL = 0x57;

/** Before `main` (32766); the rules select only the agent's own /32s, so going early is safe. */
export const DEFAULT_RULE_PRIORITY = 1107;

export interface RoutesDesired {
  readonly routes: readonly Route[];
  readonly rules: readonly Rule[];
}

/** What a mesh reconcile reads of the host's addressing: of the main table's routes, where they go and through which device. */
export interface MeshAddressing extends Omit<Addressing, 'mainRoutes'> {
  readonly mainRoutes: readonly Pick<KernelRoute, 'family' | 'dst' | 'dev'>[];
}

/** What the kernel holds of this dataplane's: its routes (every table) and rules, and the devices there are. */
export interface RoutingState {
  readonly routes: readonly KernelRoute[];
  readonly rules: readonly KernelRule[];
  readonly devices: ReadonlySet<string>;
}

export interface RoutesApplyReport {
  /** Route and rule writes that succeeded (adds, replaces and deletes). */
  readonly written: number;
}

export interface RoutesDataplaneOptions {
  /** Named network namespace to program; the agent's own when absent. */
  readonly netns?: string;
  /** Route and rule protocol that marks the agent's own entries (5–255; 0–4 mean something to the kernel). */
  readonly protocol?: number;
  /** The priority of every rule the agent installs (1–32765). */
  readonly rulePriority?: number;
}

const FAMILIES: readonly Family[] = [4, 6];

export class RoutesDataplane {
  readonly protocol: number;
  readonly rulePriority: number;
  private readonly netns: string | undefined;
  /** apply and cleanup never overlap: each reads, then writes what it read as missing. */
  private readonly queue = new SerialQueue();
  /** The last apply's routes in canonical form: the same list again (a resync with nothing changed) is not canonicalised again. */
  private wanted: { readonly routes: readonly Route[]; readonly wanted: WantedRoutes } | undefined;

  constructor(opts: RoutesDataplaneOptions = {}) {
    this.netns = opts.netns;
    this.protocol = opts.protocol ?? DEFAULT_ROUTE_PROTOCOL;
    this.rulePriority = opts.rulePriority ?? DEFAULT_RULE_PRIORITY;
    if (!Number.isInteger(this.protocol) || this.protocol < 5 || this.protocol > 255) {
      throw new RangeError(`routes dataplane: option protocol: ${this.protocol} is not in 5..255`);
    }
    if (!Number.isInteger(this.rulePriority) || this.rulePriority < 1 || this.rulePriority > 32765) {
      throw new RangeError(`routes dataplane: option rulePriority: ${this.rulePriority} is not in 1..32765`);
    }
  }

  /**
   * Makes the agent's routes and rules exactly `desired`. Throws PartialApplyError if some failed.
   * `read`: this dataplane's state as readWithAddressing() read it moments ago, when nothing since
   * can have removed routes or rules (a device set down or deleted, an address removed); read
   * again otherwise.
   */
  apply(desired: RoutesDesired, read?: RoutingState): Promise<RoutesApplyReport> {
    return this.queue.run(async () => {
      const { routes, rules, devices } = read ?? (await this.read());
      if (this.wanted?.routes !== desired.routes) this.wanted = { routes: desired.routes, wanted: wantedRoutes(desired.routes) };
      const routePlan = planRoutes(desired.routes, routes, this.protocol, this.wanted.wanted);
      const rulePlan = planRules(desired.rules, rules, this.protocol, this.rulePriority);
      const writes = [...routePlan.writes, ...rulePlan.writes];
      // A device created after the read (the WireGuard device at start) is looked for before its routes fail.
      const missing = read !== undefined && writes.some((w) => w.dev !== undefined && !devices.has(w.dev));
      return this.write(writes, [...routePlan.rejected, ...rulePlan.rejected], missing ? await this.readDevices() : devices);
    });
  }

  /** Deletes every route (in every table) and rule with the agent's protocol, and nothing else. */
  cleanup(): Promise<RoutesApplyReport> {
    return this.queue.run(async () => {
      const { routes, rules, devices } = await this.read();
      // Nothing desired: the plans are exactly the deletes of everything that is ours.
      const writes = [...planRoutes([], routes, this.protocol).writes, ...planRules([], rules, this.protocol, this.rulePriority).writes];
      return this.write(writes, [], devices);
    });
  }

  /**
   * Our routes and rules, and the devices there are, in one `ip` process per family (the links
   * with IPv4's). `-N`: tables, protocols and types as numbers, whatever names /etc/iproute2 gives them.
   */
  private async read(): Promise<RoutingState> {
    const perFamily = await Promise.all(FAMILIES.map((family) => readIpJsonBatch([...this.ownReads(), ...(family === 4 ? [['link', 'show']] : [])], this.batchOptions(family))));
    const [v4 = [], v6 = []] = perFamily;
    return { ...this.parseOwn(v4, v6), devices: new Set((v4[2] ?? []).map((link) => parseLink(link).name)) };
  }

  /**
   * This dataplane's read together with what a mesh reconcile reads of the host before it (its
   * addresses, links and main routes): three ip processes where the two reads took four. The
   * addresses and links are read as readAddressing reads them (`-N` would print scopes and link
   * types as numbers), the main routes' destinations and devices too (IPv6's come with `-N`, so
   * they carry no names); the routing state may be handed to apply() while nothing was written in
   * between.
   */
  async readWithAddressing(): Promise<{ readonly addressing: MeshAddressing; readonly routing: RoutingState | undefined }> {
    const ns = this.netns === undefined ? {} : { netns: this.netns };
    // The routing reads failing (`ip -6 rule` on a host without IPv6) is the routes step's error, not discovery's.
    const [reads, v4, v6] = await Promise.all([
      readIpJsonBatch(ADDRESSING_READS, { ...ns, globalArgs: ['-d'] }),
      readIpJsonBatch(this.ownReads(), this.batchOptions(4)).catch(() => undefined),
      readIpJsonBatch([['route', 'show', 'table', 'main'], ...this.ownReads()], this.batchOptions(6)).catch(() => undefined),
    ]);
    const { addresses, links, mainRoutes } = addressingOf(reads, v6?.[0] ?? (await readIpJson(MAIN_ROUTES_6, ns)));
    return {
      addressing: { addresses, links, mainRoutes: mainRoutes.map(({ family, dst, dev }) => ({ family, dst, dev })) },
      routing: v4 === undefined || v6 === undefined ? undefined : { ...this.parseOwn(v4, v6.slice(1)), devices: new Set(links.map((link) => link.name)) },
    };
  }

  private async readDevices(): Promise<ReadonlySet<string>> {
    return new Set((await listLinks(this.netns === undefined ? {} : { netns: this.netns })).map((link) => link.name));
  }

  private ownReads(): IpCommand[] {
    return [['route', 'show', 'table', 'all', 'proto', String(this.protocol)], ['rule', 'show']];
  }

  private batchOptions(family: Family): { readonly netns?: string; readonly globalArgs: readonly string[] } {
    return { ...(this.netns !== undefined && { netns: this.netns }), globalArgs: ['-N', `-${family}`, '-d'] };
  }

  /** Per family: [our routes, every rule]. */
  private parseOwn(v4: readonly unknown[][], v6: readonly unknown[][]): { routes: KernelRoute[]; rules: KernelRule[] } {
    const proto = String(this.protocol);
    const perFamily = [v4, v6];
    const routes = perFamily.flatMap(([routes = []], i) => routes.map((r) => parseRoute(r, FAMILIES[i] as Family, 'all')));
    const rules = perFamily.flatMap(([, rules = []], i) => rules.map((r) => parseRule(r, FAMILIES[i] as Family))).filter((rule) => rule.protocol === proto);
    return { routes, rules };
  }

  /** Deletes before adds, one forced batch per family; a missing device fails its route only. */
  private async write(planned: readonly PlannedWrite[], rejected: readonly WriteFailure[], devices: ReadonlySet<string>): Promise<RoutesApplyReport> {
    const failures: WriteFailure[] = [...rejected];
    const writes = planned.filter((w) => {
      if (w.dev === undefined || devices.has(w.dev)) return true;
      failures.push({ what: w.what, reason: `device "${w.dev}" does not exist` });
      return false;
    });
    const isDelete = (w: PlannedWrite): boolean => w.args[1] === 'del';
    const outcomes = await Promise.all(
      FAMILIES.map(async (family) => {
        const batch = [...writes.filter((w) => w.family === family && isDelete(w)), ...writes.filter((w) => w.family === family && !isDelete(w))];
        const outcome = await runForcedBatch('ip', batch.map((w) => w.args), { netns: this.netns, globalArgs: [`-${family}`] });
        for (const f of outcome.failures) failures.push({ what: batch[f.index]?.what ?? f.line, reason: f.reason });
        return outcome.written;
      }),
    );
    const written = outcomes.reduce((a, b) => a + b, 0);
    if (failures.length > 0) throw new PartialApplyError('routes', written, failures);
    return { written };
  }
}
