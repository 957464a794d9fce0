// The cluster file as a source: re-read when it changes. A file that stops parsing is reported once
// and the last good state stays in force, so a typo in an edit never tears the mesh down. A file
// from a ConfigMap is a symlink through `..data`, which the kubelet swaps to update it: the events
// then name `..data`, never the file, so those count too, and the file is also re-read every
// `pollMs` (a missed event costs one poll, and an unchanged file costs nothing).
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { WireGuardKey } from '../../model/key.js';
import type { Logger } from '../../observability/logger.js';
import { ANNOTATIONS, readAnnotation } from '../annotations.js';
import type { ClusterSource, ResourceStatus, SourceObject, SourceObjectKind } from '../source.js';
import { parseClusterFile } from './cluster-file.js';

export class FileSource implements ClusterSource {
  private objects: readonly SourceObject[] = [];
  private started = false;
  private lastText: string | undefined;
  /** Whether lastText parsed; its reads count as syncs. */
  private lastTextValid = false;
  /** Epoch ms of the last read that gave a valid file. */
  private syncedAt: number | undefined;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    private readonly onInvalid: () => void = () => {},
    private readonly pollMs = 30_000,
  ) {}

  async start(onChange: () => void): Promise<void> {
    // The first read must succeed: an agent started on a broken file has no last good state.
    await this.reload(true);
    this.started = true;
    // Watch the directory, not the file: editors and `kubectl get > f` replace the inode.
    const reload = () =>
      this.reload(false).then(
        (changed) => changed && onChange(),
        (err: unknown) => this.log.error({ err }, 'cluster file reload failed'),
      );
    this.watcher = watch(dirname(this.path), (_event, name) => {
      if (name !== null && name !== basename(this.path) && !name.startsWith('..')) return;
      clearTimeout(this.debounce);
      this.debounce = setTimeout(reload, 100);
    });
    this.poll = setInterval(reload, this.pollMs);
    this.poll.unref();
  }

  /** Re-reads the file; returns whether its content changed. */
  async reload(strict: boolean): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if (strict) throw err;
      this.log.error(`cluster file ${this.path}: ${(err as Error).message}; keeping the last good state`);
      this.onInvalid();
      return false;
    }
    if (text === this.lastText) {
      if (this.lastTextValid) this.syncedAt = Date.now();
      return false;
    }
    this.lastText = text;
    this.lastTextValid = false;
    try {
      this.objects = parseClusterFile(text, this.path);
    } catch (err) {
      if (strict) throw err;
      this.log.error(`${(err as Error).message}; keeping the last good state`);
      this.onInvalid();
      return false;
    }
    this.lastTextValid = true;
    this.syncedAt = Date.now();
    return true;
  }

  snapshot(): readonly SourceObject[] {
    return this.objects;
  }

  // The whole file is read at once: every kind is known as soon as the first read succeeded.
  hasSynced(): boolean {
    return this.started;
  }

  resourceStatus(): readonly ResourceStatus[] {
    const kinds: SourceObjectKind[] = ['Node', 'Peer', 'Service', 'EndpointSlice'];
    const synced = this.syncedAt !== undefined ? { lastSynced: this.syncedAt } : {};
    return kinds.map((kind) => ({ kind, state: this.started ? 'synced' : 'never-synced', settled: this.started, ...synced }));
  }

  // The file is the operator's: the agent never writes to it.
  readonly publisher = undefined;
  readonly heartbeats = undefined;

  /** The operator wrote this node's public key into the file: a different key is a start-up error. */
  checkOwnKey(node: string, publicKey: WireGuardKey, keyFile: string): void {
    const self = this.objects.find((o) => o.kind === 'Node' && o.object.metadata?.name === node);
    if (self === undefined) throw new Error(`cluster file: no Node "${node}" (set --hostname)`);
    const key = readAnnotation(self.object.metadata?.annotations, ANNOTATIONS.key)?.value;
    if (key !== publicKey) {
      throw new Error(
        `cluster file: Node "${node}" has key ${key ?? '(none)'} but ${keyFile} belongs to ${publicKey}; ` +
          `put the public key printed by 'wirelane keygen' into the file`,
      );
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    this.watcher?.close();
  }
}
