// `wirelane agent`: start-up, the reconcile loop, HTTP, and a clean exit on SIGTERM/SIGINT.
import { join } from 'node:path';
import { wirelaneVersion } from '../cli/version.js';
import { renderSvg } from '../graphviz/render.js';
import { configureTimeouts } from '../host/timeouts.js';
import { publicKeyOf } from '../model/key.js';
import { errorLine } from '../observability/first-line.js';
import { createLogger } from '../observability/logger.js';
import { AgentMetrics } from '../observability/metrics.js';
import type { ReflectedKind, ResourceStatus } from '../sources/source.js';
import { loadOrCreateKeyFile } from '../state/key-file.js';
import type { AgentConfig } from './config.js';
import { HeapRelease } from './heap-release.js';
import { hostPlacementOf, removeHostState } from './host-cleanup.js';
import { startHttpServers } from './http.js';
import { LastSeenTimer } from './last-seen-timer.js';
import { LoopHealth, monotonicNow } from './loop-health.js';
import { openFastPath } from './fast-path-choice.js';
import { MeshReconciler } from './mesh-reconciler.js';
import { ReconcileLoop } from './reconcile-loop.js';
import { openServiceProxy } from './service-proxy-choice.js';
import { ebpfCounters } from './service-proxy-modes.js';
import { ServiceReconciler } from './service-reconciler.js';
import { openClusterSource } from './source-choice.js';
import { type Readiness, type StatusInput, buildStatus } from './status.js';
import { type LoopName, healthBoundMs } from './sync-health.js';

const FOLLOW_PODS_MS = 1000;

export async function runAgent(config: AgentConfig): Promise<number> {
  const log = createLogger(config.logLevel);
  const metrics = new AgentMetrics();
  const version = wirelaneVersion();
  configureTimeouts({ commandTimeoutMs: config.commandTimeoutMs, onTimeout: (command) => metrics.commandTimeouts.inc({ command }) });
  const privateKey = await loadOrCreateKeyFile(join(config.stateDir, 'key'));
  const publicKey = publicKeyOf(privateKey);
  log.info({ node: config.hostname, publicKey, source: config.source.kind }, 'starting');

  const source = await openClusterSource(config, log, metrics);

  let loop: ReconcileLoop | undefined;
  let synced = false;
  // Nothing is reconciled before every resource has listed once: an unsynced source is unknown, not empty.
  // (Changes during the first sync trigger nothing: loop.start() runs a reconcile anyway.)
  const changed = (kind?: ReflectedKind): void => {
    if (!synced) return;
    // kube-proxy's "queued": a change its proxier tracks (a file reload may hold any change).
    if (kind === undefined || kind === 'Service' || kind === 'EndpointSlice') metrics.proxyRules.lastQueued.set(Date.now() / 1000);
    loop?.trigger();
  };
  // The source lists while the data paths load their BPF programs: an API server takes seconds to
  // answer 20,000 objects, and the kernel verifies the programs meanwhile, on the thread pool
  // (BpfObject.loadAsync), so a cluster file is read and decoded on this thread at the same time.
  const listed = source.start(changed).then(() => true);
  listed.catch(() => {}); // awaited once the data paths are up, and its failure thrown there
  /** A start-up step; when it fails, the source stops listing (its watches would keep the process up). */
  const startStep = <T>(step: () => Promise<T>): Promise<T> =>
    step().catch(async (err: unknown) => {
      await source.stop();
      throw err;
    });
  const fastPath = await startStep(() => openFastPath(config, log));
  if (fastPath) metrics.fastPath.readFrom(() => fastPath.stats());
  const mesh = new MeshReconciler({ config, log, metrics, privateKey, publicKey, source, requestReconcile: () => loop?.trigger(), ...(fastPath && { fastPath }) });
  // Pods come and go between resyncs: their veths get the program within a second (sysfs, no command).
  const followPods = fastPath && setInterval(() => {
    try {
      fastPath.followPorts();
    } catch (err) {
      log.error(`fast path: following the bridge's ports: ${errorLine(err)}`);
      metrics.errors.inc({ step: 'fast-path' });
    }
  }, FOLLOW_PODS_MS);
  followPods?.unref();
  const placement = hostPlacementOf(config);
  const proxy = await startStep(() =>
    openServiceProxy(config, log, placement, (failure) => {
      log.error(`services: ${failure}`);
      metrics.errors.inc({ step: 'services' });
    }),
  );
  if (proxy?.mode === 'ebpf') {
    const counters = await startStep(() => ebpfCounters(placement));
    metrics.nodePort.readFrom(counters.nodePort);
    metrics.sockLb.readFrom(counters.sockLb);
  }
  const services = proxy && new ServiceReconciler({ config, log, metrics, source, proxy });
  const loops: LoopName[] = services ? ['mesh', 'services'] : ['mesh'];
  for (const name of loops) for (const result of ['success', 'failure']) metrics.syncs.inc({ loop: name, result }, 0);
  const health = new LoopHealth(loops, healthBoundMs(config.resyncPeriodMs), (name, result) =>
    metrics.syncs.inc({ loop: name, result: result.ok ? 'success' : 'failure' }),
  );
  // Services are applied after the mesh (backends on other nodes are reached through it); their map
  // is computed while the mesh waits on its commands.
  const heap = new HeapRelease(config.resyncPeriodMs, log);
  loop = new ReconcileLoop(
    async () => {
      const meshDone = health.run('mesh', () => mesh.reconcile());
      const map = services?.prepare();
      await meshDone;
      if (services) await health.run('services', () => services.reconcile(map));
      heap.afterReconcile();
    },
    config.resyncPeriodMs,
    { onDue: () => health.due() },
  );

  // HTTP first: /healthz and /readyz answer (not ready, and why) during a long first sync.
  const http = await startStep(() => startHttpServers({ health: config.listen, metrics: config.metricsListen }, {
    metrics,
    health: () => health.verdict(),
    ready: () => mesh.ready && (services?.ready ?? true),
    unsyncedResources: () => source.resourceStatus().filter((r) => !r.settled).map(describeUnsynced),
    graph: () => mesh.graph(),
    renderSvg,
    status: async (readiness: Readiness) =>
      buildStatus({
        node: config.hostname,
        version,
        now: monotonicNow(),
        readiness,
        healthy: health.verdict().healthy,
        serviceProxy: proxy && { mode: proxy.mode, chosen: proxy.chosen, servicePorts: services?.servicePorts },
        topology: mesh.lastTopology,
        device: await mesh.device.dump().then(
          (status): StatusInput['device'] => ({ interface: config.interface, status }),
          (err: unknown) => ({ interface: config.interface, error: errorLine(err) }),
        ),
        loops: health.syncs(),
        resources: source.resourceStatus(),
      }),
  }, log));
  const stopping = stopSignal(log);
  try {
    synced = await Promise.race([listed, stopping.then(() => false)]);
    if (synced) source.checkOwnKey(config.hostname, publicKey, join(config.stateDir, 'key'));
  } catch (err) {
    await http.close();
    throw err;
  }
  // Mid-upgrade, agents that predate Lease heartbeats read last-seen: it is written for them.
  const lastSeen = new LastSeenTimer({ hostname: config.hostname, everyMs: config.resyncPeriodMs / 2, source, log, metrics });
  if (synced) {
    loop.start();
    lastSeen.start();
  } else log.warn('stop signal before the cluster source synced: nothing was reconciled');

  const signal = await stopping;
  log.info({ signal, cleanUp: config.cleanUp }, 'stopping');
  await loop.stop();
  await lastSeen.stop();
  clearInterval(followPods);
  fastPath?.close();
  if (config.cleanUp) {
    // First what only this process holds (proxy sockets and their UDP flows, the wireguard-go it
    // supervises), then the same removal `wirelane cleanup` runs: nothing any mode made stays.
    await services?.cleanup().catch((err: Error) => log.error(`clean-up services: ${errorLine(err)}`));
    await mesh.prepareCleanup();
    const publisher = source.publisher ?? source.sharedAnnotations;
    const report = await removeHostState(placement, publisher && (() => publisher.unpublishNode(config.hostname)));
    if (report.removed.length > 0) log.info({ removed: report.removed }, 'clean-up');
    for (const failure of report.failures) log.error(`clean-up ${failure}`);
  } else {
    mesh.release();
  }
  await source.stop();
  await http.close();
  log.info('stopped');
  return 0;
}

/**
 * Resolves on the first SIGTERM/SIGINT; a second one ends the process at once. The listeners stay
 * installed: with `once`, signal-exit (loaded by dependencies) would see no other listener left and
 * re-raise the signal, killing the agent in the middle of its clean-up.
 */
function stopSignal(log: ReturnType<typeof createLogger>): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received) {
        log.warn({ signal }, 'second signal: exiting without finishing clean-up');
        process.exit(1);
      }
      received = true;
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** `Service (forbidden: list: 403 Forbidden: ...)` for /readyz. */
function describeUnsynced(r: ResourceStatus): string {
  return `${r.kind} (${r.state}${r.lastError !== undefined ? `: ${r.lastError}` : ''})`;
}
