// The cluster file as a source: re-read when it changes. A file that stops parsing is reported once
// and the last good state stays in force, so a typo in an edit never tears the mesh down. A file
// from a ConfigMap is a symlink through `..data`, which the kubelet swaps to update it: the events
// then name `..data`, never the file, so those count too, and the file is also re-read every
// `pollMs` (a missed event costs one poll, and an unchanged file costs nothing: its inode, size and
// times are compared before it is read; documents unchanged in a changed file keep their objects
// and are not parsed again, see ClusterFileReader). With an annotations directory, the agents'
// shared run-time annotations (annotations-dir.ts) are read with the file, by the same watch and
// poll, and laid over their Nodes.
import { watch, type FSWatcher } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { WireGuardKey } from '../../model/key.js';
import type { Logger } from '../../observability/logger.js';
import { ANNOTATIONS, readAnnotation } from '../annotations.js';
import type { ClusterSource, NodePublisher, ResourceStatus, SourceObject, SourceObjectKind } from '../source.js';
import { type OverlaidNodes, overlayNodes } from './annotation-overlay.js';
import { AnnotationsDirReader, AnnotationsDirWriter } from './annotations-dir.js';
import { type ClusterFileRead, ClusterFileReader } from './cluster-file.js';

const READ_CHUNK_BYTES = 256 * 1024;

export class FileSource implements ClusterSource {
  /** The file's objects, as read. */
  private objects: readonly SourceObject[] = [];
  /** The same with the shared annotations laid over their Nodes: what snapshot() hands out. */
  private overlaid: readonly SourceObject[] = [];
  /** Each Node as overlaid last (annotation-overlay.ts). */
  private readonly overlaidNodes: OverlaidNodes = new WeakMap();
  private readonly annotations: AnnotationsDirReader | undefined;
  readonly sharedAnnotations: NodePublisher | undefined;
  private started = false;
  private readonly reader = new ClusterFileReader({ hold: true });
  /** What each read of the file goes through (readChunks). */
  private readonly chunk = Buffer.allocUnsafeSlow(READ_CHUNK_BYTES);
  /** The last text read, as a digest (the text itself would be held for nothing). */
  private lastText: string | undefined;
  /** The file as it was when last read: an unchanged one is not read again. */
  private lastStat: string | undefined;
  /** Whether lastText parsed; its reads count as syncs. */
  private lastTextValid = false;
  /** Epoch ms of the last read that gave a valid file. */
  private syncedAt: number | undefined;
  private watcher: FSWatcher | undefined;
  private dirWatcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    private readonly onInvalid: () => void = () => {},
    private readonly pollMs = 30_000,
    /** --annotations-dir: where the agents share their run-time annotations; none without it. */
    private readonly annotationsDir?: string,
  ) {
    this.annotations = annotationsDir === undefined ? undefined : new AnnotationsDirReader(annotationsDir, log, onInvalid);
    this.sharedAnnotations = annotationsDir === undefined ? undefined : new AnnotationsDirWriter(annotationsDir);
  }

  async start(onChange: () => void): Promise<void> {
    // The first read must succeed: an agent started on a broken file has no last good state.
    if (this.annotationsDir !== undefined) await mkdir(this.annotationsDir, { recursive: true, mode: 0o755 });
    await this.reload(true);
    this.started = true;
    // Watch the directory, not the file: editors and `kubectl get > f` replace the inode.
    // One reload at a time, and at most one more after it: a file rewritten faster than it is read
    // (a large file on a busy node) would otherwise be read by several reloads at once, each
    // holding a copy of it.
    let running = false;
    let again = false;
    const reload = async (): Promise<void> => {
      if (running) {
        again = true;
        return;
      }
      running = true;
      try {
        do {
          again = false;
          await this.reload(false).then(
            (changed) => changed && onChange(),
            (err: unknown) => this.log.error({ err }, 'cluster file reload failed'),
          );
        } while (again);
      } finally {
        running = false;
      }
    };
    const soon = (): void => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(reload, 100);
    };
    this.watcher = watch(dirname(this.path), (_event, name) => {
      if (name !== null && name !== basename(this.path) && !name.startsWith('..')) return;
      soon();
    });
    if (this.annotationsDir !== undefined) {
      // A directory removed under the watch ends it with an error: the poll still reads it.
      this.dirWatcher = watch(this.annotationsDir, soon).on('error', (err) => this.log.error(`annotations directory ${this.annotationsDir}: ${err.message}; read every ${this.pollMs} ms only`));
    }
    this.poll = setInterval(reload, this.pollMs);
    this.poll.unref();
  }

  /** Re-reads the file and the annotations directory; returns whether what they hold changed. */
  async reload(strict: boolean): Promise<boolean> {
    const file = await this.reloadFile(strict);
    const shared = (await this.annotations?.read()) ?? false;
    if (shared) this.applyOverlays();
    return file || shared;
  }

  /** Re-reads the file; returns whether its content changed. */
  private async reloadFile(strict: boolean): Promise<boolean> {
    let read: ClusterFileRead;
    let digest: string;
    try {
      const before = await stat(this.path);
      const identity = `${before.dev}:${before.ino}:${before.size}:${before.mtimeMs}:${before.ctimeMs}`;
      if (identity === this.lastStat) {
        if (this.lastTextValid) this.syncedAt = Date.now();
        return false;
      }
      ({ read, digest } = await this.readChunks());
      // Only a file that did not change while it was read stands for what stat saw.
      const after = await stat(this.path);
      this.lastStat = `${after.dev}:${after.ino}:${after.size}:${after.mtimeMs}:${after.ctimeMs}` === identity ? identity : undefined;
    } catch (err) {
      if (strict) throw err;
      this.log.error(`cluster file ${this.path}: ${(err as Error).message}; keeping the last good state`);
      this.onInvalid();
      return false;
    }
    if (digest === this.lastText) {
      if (this.lastTextValid) this.syncedAt = Date.now();
      return false;
    }
    this.lastText = digest;
    this.lastTextValid = false;
    try {
      // Not all JSON: the whole text, as YAML (read again: the chunks are gone).
      this.objects = read.end() ?? this.reader.parse(await readFile(this.path), this.path);
    } catch (err) {
      if (strict) throw err;
      this.log.error(`${(err as Error).message}; keeping the last good state`);
      this.onInvalid();
      return false;
    }
    this.lastTextValid = true;
    this.syncedAt = Date.now();
    this.applyOverlays();
    return true;
  }

  /**
   * The file a chunk at a time into a buffer kept for the next read, handed to the reader as it
   * comes: a whole-file Buffer per read (27 MiB at 10,000 Services, rewritten every second under
   * churn) left the RSS hundreds of MiB higher after the churn.
   */
  private async readChunks(): Promise<{ read: ClusterFileRead; digest: string }> {
    const read = this.reader.begin(this.path);
    const hash = createHash('sha256');
    const file = await open(this.path, 'r');
    try {
      for (;;) {
        const { bytesRead } = await file.read(this.chunk, 0, this.chunk.length, null);
        if (bytesRead === 0) break;
        const piece = this.chunk.subarray(0, bytesRead);
        hash.update(piece);
        read.push(piece);
      }
    } finally {
      await file.close();
    }
    return { read, digest: hash.digest('base64') };
  }

  snapshot(): readonly SourceObject[] {
    return this.overlaid;
  }

  private applyOverlays(): void {
    this.overlaid = this.annotations === undefined ? this.objects : overlayNodes(this.objects, this.annotations.overlays(), this.overlaidNodes);
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

  // The file is the operator's: the agent never writes to it (only, with a directory, its shared annotations).
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
    this.dirWatcher?.close();
  }
}
