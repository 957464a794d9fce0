// `wirelane agent`: start-up, the reconcile loop, HTTP, and a clean exit on SIGTERM/SIGINT.
import { join } from 'node:path';
import { renderSvg } from '../graphviz/render.js';
import { publicKeyOf } from '../model/key.js';
import { createLogger } from '../observability/logger.js';
import { AgentMetrics } from '../observability/metrics.js';
import { ANNOTATIONS, readAnnotation } from '../sources/annotations.js';
import { FileSource } from '../sources/file/file-source.js';
import { KubernetesSource, loadKubeConfig } from '../sources/kubernetes/kubernetes-source.js';
import type { ClusterSource } from '../sources/source.js';
import { loadOrCreateKeyFile } from '../state/key-file.js';
import type { AgentConfig } from './config.js';
import { hostPlacementOf, removeHostState } from './host-cleanup.js';
import { startHttpServer } from './http.js';
import { MeshReconciler } from './mesh-reconciler.js';
import { ReconcileLoop } from './reconcile-loop.js';
import { openServiceProxy } from './service-proxy-choice.js';
import { ServiceReconciler } from './service-reconciler.js';

export async function runAgent(config: AgentConfig): Promise<number> {
  const log = createLogger(config.logLevel);
  const metrics = new AgentMetrics();
  const privateKey = await loadOrCreateKeyFile(join(config.stateDir, 'key'));
  const publicKey = publicKeyOf(privateKey);
  log.info({ node: config.hostname, publicKey, source: config.source.kind }, 'starting');

  const source: ClusterSource =
    config.source.kind === 'file'
      ? new FileSource(config.source.path, log, () => metrics.invalidObjects.inc({ kind: 'ClusterFile' }))
      : new KubernetesSource(loadKubeConfig(config.source.kubeconfig), log, config.serviceProxy !== 'off');

  let loop: ReconcileLoop | undefined;
  const mesh = new MeshReconciler({ config, log, metrics, privateKey, publicKey, source, requestReconcile: () => loop?.trigger() });
  const placement = hostPlacementOf(config);
  const proxy = await openServiceProxy(config, log, placement, (failure) => {
    log.error(`services: ${failure}`);
    metrics.errors.inc({ step: 'services' });
  });
  const services = proxy && new ServiceReconciler({ config, log, metrics, source, proxy });
  // Services after the mesh: backends on other nodes are reached through it.
  loop = new ReconcileLoop(async () => {
    await mesh.reconcile();
    await services?.reconcile();
  }, config.resyncPeriodMs);

  await source.start(() => loop?.trigger());
  if (source.kind === 'file') checkFileKey(source, config.hostname, publicKey, config.stateDir);

  const server = await startHttpServer(config.listen, {
    metrics,
    ready: () => mesh.ready && (services?.ready ?? true),
    graph: () => mesh.graph(),
    renderSvg,
  });
  loop.start();

  const signal = await stopSignal(log);
  log.info({ signal, cleanUp: config.cleanUp }, 'stopping');
  await loop.stop();
  if (config.cleanUp) {
    // First what only this process holds (proxy sockets and their UDP flows, the wireguard-go it
    // supervises), then the same removal `wirelane cleanup` runs: nothing any mode made stays.
    await services?.cleanup().catch((err: Error) => log.error(`clean-up services: ${err.message.split('\n')[0]}`));
    await mesh.release();
    const annotations = config.source.kind === 'kubernetes' ? { kubeconfig: config.source.kubeconfig, node: config.hostname } : undefined;
    const report = await removeHostState(placement, annotations);
    if (report.removed.length > 0) log.info({ removed: report.removed }, 'clean-up');
    for (const failure of report.failures) log.error(`clean-up ${failure}`);
  }
  await source.stop();
  server.close();
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

/** With a cluster file the operator wrote our public key into it: a different key is a start-up error. */
function checkFileKey(source: ClusterSource, hostname: string, publicKey: string, stateDir: string): void {
  const self = source.snapshot().find((o) => o.kind === 'Node' && o.object.metadata?.name === hostname);
  if (self === undefined) throw new Error(`cluster file: no Node "${hostname}" (set --hostname)`);
  const key = readAnnotation(self.object.metadata?.annotations, ANNOTATIONS.key)?.value;
  if (key !== publicKey) {
    throw new Error(
      `cluster file: Node "${hostname}" has key ${key ?? '(none)'} but ${join(stateDir, 'key')} belongs to ${publicKey}; ` +
        `put the public key printed by 'wirelane keygen' into the file`,
    );
  }
}
