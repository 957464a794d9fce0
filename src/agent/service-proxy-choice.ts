// Which service data path to run, from the table of modes (service-proxy-modes.ts). `auto` takes
// the fastest the host supports, stepping down with a reason; one function decides
// (decideServiceProxy), `wirelane probe` prints its answer and the agent acts on it.
//
// Whatever mode starts, what the other modes left on the host goes once the new one has programmed
// its first service map (with `off`, at once): only one data path may answer for service addresses,
// and removing the old one only after the new one is in place leaves no moment with neither. This is
// also how `auto` gives up programs it re-adopted before stepping down.
import type { ServiceProxy, ServiceProxyMode, ServiceProxyReport } from '../dataplane/service-proxy.js';
import { errorLine } from '../observability/first-line.js';
import type { ServiceChanges } from '../services/changes.js';
import type { Logger } from '../observability/logger.js';
import type { AgentConfig } from './config.js';
import { type ModeProbe, type ModeStart, SERVICE_PROXY_MODES, type ServicePlacement, modeRow } from './service-proxy-modes.js';

export class ServiceProxyUnavailableError extends Error {
  override readonly name = 'ServiceProxyUnavailableError';
}

export interface ServiceProxyDecision {
  /** What `auto` runs. */
  readonly mode: ServiceProxyMode;
  /** Why each faster mode was passed over, in order: `ebpf: …`, `iptables: …`. Empty for the fastest. */
  readonly reasons: readonly string[];
  /** Every mode's probe, in the table's order. */
  readonly probes: ReadonlyMap<ServiceProxyMode, ModeProbe>;
}

/** The one decision `auto` makes, from what the kernel and the host offer. */
export async function decideServiceProxy(placement: ServicePlacement = {}): Promise<ServiceProxyDecision> {
  const probes = new Map<ServiceProxyMode, ModeProbe>();
  for (const row of SERVICE_PROXY_MODES) probes.set(row.mode, await row.probe(placement));
  const reasons: string[] = [];
  for (const [mode, probe] of probes) {
    if (probe.usable) return { mode, reasons, probes };
    reasons.push(`${mode}: ${probe.reason ?? 'unusable'}`);
  }
  throw new ServiceProxyUnavailableError(`no service proxy mode can run here: ${reasons.join('; ')}`);
}

/** How the running mode was chosen, for `wirelane status`: by `auto` (and why each faster mode was not), or by the flag. */
export interface ServiceProxyChoice {
  readonly by: 'auto' | 'flag';
  /** `auto`: why each faster mode was passed over or failed to start, in order; empty otherwise. */
  readonly reasons: readonly string[];
}

/**
 * Starts the mode `config.serviceProxy` names (`auto`: the first of the table that probes usable
 * and starts), or none for `off`. The proxy removes the other modes' leftovers after its first
 * apply; with `off` they are removed here. A part that cannot be removed goes to `reportFailure`
 * (one line) and is tried again at the next apply: it never fails the apply, whose rules are in
 * place (a failed apply would mark health check node ports unhealthy and drain load balancers).
 */
export async function openServiceProxy(
  config: AgentConfig,
  log: Logger,
  placement: ServicePlacement = {},
  reportFailure: (failure: string) => void = (failure) => log.error(failure),
): Promise<LeftoverRemovingProxy | undefined> {
  const start: ModeStart = { config, log, placement };
  const choice = config.serviceProxy;
  if (choice === 'off') {
    for (const failure of await removeLeftoversOfModes(otherModes(undefined), placement, log)) reportFailure(failure);
    return undefined;
  }
  const { proxy, chosen } = choice === 'auto' ? await openAuto(start) : await openExplicit(choice, start);
  return new LeftoverRemovingProxy(proxy, () => removeLeftoversOfModes(otherModes(proxy.mode), placement, log), reportFailure, chosen);
}

interface OpenedProxy {
  readonly proxy: ServiceProxy;
  readonly chosen: ServiceProxyChoice;
}

async function openExplicit(mode: ServiceProxyMode, start: ModeStart): Promise<OpenedProxy> {
  try {
    return { proxy: await modeRow(mode).open(start), chosen: { by: 'flag', reasons: [] } };
  } catch (error) {
    throw new ServiceProxyUnavailableError(`--service-proxy ${mode}: ${(error as Error).message}`, { cause: error });
  }
}

async function openAuto(start: ModeStart): Promise<OpenedProxy> {
  const decision = await decideServiceProxy(start.placement);
  const reasons = [...decision.reasons];
  for (const row of SERVICE_PROXY_MODES.slice(SERVICE_PROXY_MODES.findIndex((r) => r.mode === decision.mode))) {
    const probe = decision.probes.get(row.mode);
    if (probe?.usable !== true) {
      reasons.push(`${row.mode}: ${probe?.reason ?? 'unusable'}`);
      continue;
    }
    try {
      const proxy = await row.open(start);
      start.log.info({ mode: row.mode, reasons }, 'service proxy chosen');
      return { proxy, chosen: { by: 'auto', reasons } };
    } catch (error) {
      // The probe said yes but the start failed (it removed what it attached): step down.
      reasons.push(`${row.mode}: start failed: ${errorLine(error)}`);
      start.log.warn({ err: (error as Error).message }, `${row.mode} service proxy failed to start; falling back`);
    }
  }
  throw new ServiceProxyUnavailableError(`--service-proxy auto: no mode could start: ${reasons.join('; ')}`);
}

function otherModes(mode: ServiceProxyMode | undefined): ServiceProxyMode[] {
  return SERVICE_PROXY_MODES.map((row) => row.mode).filter((m) => m !== mode);
}

/** Removes what runs of `modes` left; returns the failures, one line each (the others still run). */
export async function removeLeftoversOfModes(modes: readonly ServiceProxyMode[], placement: ServicePlacement, log: Logger): Promise<string[]> {
  // At once: the modes own disjoint state, and the iptables-based ones then share each iptables-save
  // (chains.ts) rather than read the same tables one after the other.
  const outcomes = await Promise.all(
    modes.map(async (mode) => {
      try {
        const removed = await modeRow(mode).removeLeftovers(placement);
        if (removed.length > 0) log.info({ mode, removed }, `removed what the ${mode} service proxy left`);
        return undefined;
      } catch (error) {
        return `removing what the ${mode} service proxy left: ${errorLine(error)}`;
      }
    }),
  );
  return outcomes.filter((failure) => failure !== undefined);
}

/** The chosen proxy, removing the other modes' leftovers after each successful apply until that has worked once. */
export class LeftoverRemovingProxy implements ServiceProxy {
  readonly mode: ServiceProxyMode;
  #leftovers = true;

  constructor(
    private readonly proxy: ServiceProxy,
    private readonly removeLeftovers: () => Promise<string[]>,
    private readonly reportFailure: (failure: string) => void,
    readonly chosen: ServiceProxyChoice = { by: 'flag', reasons: [] },
  ) {
    this.mode = proxy.mode;
  }

  async apply(changes: ServiceChanges): Promise<ServiceProxyReport> {
    const report = await this.proxy.apply(changes);
    if (this.#leftovers) {
      const failures = await this.removeLeftovers();
      failures.forEach(this.reportFailure);
      this.#leftovers = failures.length > 0;
    }
    return report;
  }

  cleanup(): Promise<void> {
    return this.proxy.cleanup();
  }
}
