// One informer over one resource, kept alive. client-node's informer re-lists by itself after a
// 410 Gone, but on any other watch or list error it stops for good; here a fresh informer (which
// lists first) replaces it after a backoff, so objects deleted while disconnected disappear too.
import { type KubeConfig, type KubernetesListObject, type KubernetesObject, makeInformer } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';

type Informer = ReturnType<typeof makeInformer<KubernetesObject>>;

const BACKOFF_MS = [500, 1000, 2000, 5000, 10000, 30000];

export class ResourceWatch {
  private informer: Informer | undefined;
  private failures = 0;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly kubeconfig: KubeConfig,
    /** The API path, e.g. `/api/v1/nodes`. */
    readonly path: string,
    private readonly list: () => Promise<KubernetesListObject<KubernetesObject>>,
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {}

  /** Resolves after the first successful list; retries until then. */
  start(): Promise<void> {
    return new Promise((resolve) => {
      this.connect(resolve);
    });
  }

  private connect(onSynced: () => void): void {
    if (this.stopped) return;
    const informer = makeInformer(this.kubeconfig, this.path, this.list);
    this.informer = informer;
    const changed = (): void => {
      if (this.informer === informer) this.onChange();
    };
    informer.on('add', changed);
    informer.on('update', changed);
    informer.on('delete', changed);
    informer.on('error', (err: unknown) => {
      if (this.informer !== informer || this.stopped) return;
      const delay = BACKOFF_MS[Math.min(this.failures++, BACKOFF_MS.length - 1)] as number;
      this.log.warn(`watch ${this.path}: ${describe(err)}; re-listing in ${delay} ms`);
      this.retry = setTimeout(() => {
        void informer.stop();
        this.connect(onSynced);
      }, delay);
    });
    informer.start().then(
      () => {
        if (this.informer !== informer) return;
        this.failures = 0;
        onSynced();
        // A replacement informer's list may differ from what the old one held.
        this.onChange();
      },
      // A failed first list also lands in the 'error' callback, which schedules the retry.
      () => {},
    );
  }

  objects(): readonly KubernetesObject[] {
    return this.informer?.list() ?? [];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    await this.informer?.stop();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}
