// The annotations directory of a file-sourced cluster (--annotations-dir): each agent writes its own
// node's shared annotations there (annotation-overlay.ts), and every agent's file source reads them
// all. A file that does not parse is reported once and its last good annotations stay (unknown is
// not empty); a file that is gone takes its annotations along (its agent exited cleanly).
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { readTextIfPresent, replaceTextFile } from '../../host/text-file.js';
import { errorLine } from '../../observability/first-line.js';
import type { NodePublisher } from '../source.js';
import { MAX_OVERLAY_BYTES, OverlayError, SHARED_ANNOTATIONS, formatOverlay, isSharedAnnotation, nodeOfOverlayFile, overlayFileName, parseOverlay } from './annotation-overlay.js';

interface FileState {
  /** The file as it was when last read: an unchanged one is not read again. */
  readonly identity: string;
  /** Its last good annotations; undefined when it never parsed. */
  readonly annotations: Readonly<Record<string, string>> | undefined;
}

/** Where the reader's lines go: the agent's log, or the CLI's warnings on stderr. */
export interface LineLog {
  error(line: string): void;
}

export class AnnotationsDirReader {
  #files = new Map<string, FileState>();

  constructor(
    private readonly dir: string,
    private readonly log: LineLog,
    /** Counts a file (or its annotations) rejected as malformed. */
    private readonly onInvalid: () => void = () => {},
  ) {}

  /** Every node's shared annotations as last read. */
  overlays(): ReadonlyMap<string, Readonly<Record<string, string>>> {
    const out = new Map<string, Readonly<Record<string, string>>>();
    for (const [node, file] of this.#files) if (file.annotations !== undefined) out.set(node, file.annotations);
    return out;
  }

  /** Reads what changed; returns whether any node's annotations did. */
  async read(): Promise<boolean> {
    let entries: string[];
    try {
      entries = await readdir(this.dir);
    } catch (err) {
      // No directory yet is no file yet; any other failure is not knowing: everything read stays.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.log.error(`annotations directory ${this.dir}: ${errorLine(err)}; keeping what was read`);
        return false;
      }
      entries = [];
    }
    let changed = false;
    const present = new Set<string>();
    for (const entry of entries) {
      const node = nodeOfOverlayFile(entry);
      if (node === undefined) continue;
      const read = await this.readFile(node, join(this.dir, entry));
      if (read === 'gone') continue;
      present.add(node);
      if (read === 'changed') changed = true;
    }
    for (const [node, file] of this.#files) {
      if (present.has(node)) continue;
      this.#files.delete(node);
      if (file.annotations !== undefined) changed = true;
    }
    return changed;
  }

  private async readFile(node: string, path: string): Promise<'gone' | 'changed' | 'same'> {
    const before = this.#files.get(node);
    // The file as it was when last read: an unchanged one is not read (nor reported) again.
    let identity = 'not stat-ed';
    let text: string | undefined;
    try {
      const s = await stat(path);
      identity = `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      if (identity === before?.identity) return 'same';
      if (s.size > MAX_OVERLAY_BYTES) throw new OverlayError(`${path}: ${s.size} bytes, more than ${MAX_OVERLAY_BYTES}`);
      text = await readTextIfPresent(path);
      if (text === undefined) return 'gone';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
      this.reject(err, path);
      this.#files.set(node, { identity, annotations: before?.annotations });
      return 'same';
    }
    let annotations: Readonly<Record<string, string>>;
    try {
      const parsed = parseOverlay(text, path);
      if (parsed.refused.length > 0) {
        this.log.error(`${path}: ${parsed.refused.join(', ')} ignored: the annotations directory carries only ${SHARED_ANNOTATIONS.join(', ')}`);
        this.onInvalid();
      }
      annotations = parsed.annotations;
    } catch (err) {
      this.reject(err, path);
      this.#files.set(node, { identity, annotations: before?.annotations });
      return 'same';
    }
    if (before?.annotations !== undefined && isDeepStrictEqual(before.annotations, annotations)) {
      this.#files.set(node, { identity, annotations: before.annotations });
      return 'same';
    }
    this.#files.set(node, { identity, annotations });
    return 'changed';
  }

  private reject(err: unknown, path: string): void {
    const message = err instanceof OverlayError ? err.message : `${path}: ${errorLine(err)}`;
    this.log.error(`${message}; keeping its last good annotations`);
    this.onInvalid();
  }
}

/**
 * This agent's side: its node's shared annotations, merged into what its file holds and written
 * only when that changes. A narrower capability than the Kubernetes source's publisher: it takes
 * only the shared annotations, so the cluster file's key and addresses for this node stand.
 */
export class AnnotationsDirWriter implements NodePublisher {
  constructor(private readonly dir: string) {}

  async publishNode(name: string, annotations: Readonly<Record<string, string | null>>, alongside: Readonly<Record<string, string>> = {}): Promise<boolean> {
    const path = join(this.dir, overlayFileName(name));
    for (const a of [...Object.keys(annotations), ...Object.keys(alongside)]) {
      if (!isSharedAnnotation(a)) throw new Error(`${a} is not shared through the annotations directory`);
    }
    const text = await readTextIfPresent(path);
    // A file this agent cannot read back is replaced: it is this node's, and nobody else writes it.
    const current = text === undefined ? {} : safely(() => parseOverlay(text, path).annotations) ?? {};
    const next: Record<string, string> = { ...current };
    for (const [a, v] of Object.entries(annotations)) {
      if (v === null) delete next[a];
      else next[a] = v;
    }
    if (text !== undefined && isDeepStrictEqual(next, current)) return false;
    return replaceTextFile(path, formatOverlay({ ...next, ...alongside }));
  }

  /** Removes this node's file (a clean exit); one line when there was one. */
  async unpublishNode(name: string): Promise<readonly string[]> {
    const path = join(this.dir, overlayFileName(name));
    if ((await readTextIfPresent(path)) === undefined) return [];
    await rm(path, { force: true });
    return [path];
  }
}

function safely<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
