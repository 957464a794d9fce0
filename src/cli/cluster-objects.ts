// Where the CLI's view of the cluster comes from: a cluster file (--from) or the live API
// (--kubeconfig, else $KUBECONFIG, else in-cluster credentials), exactly one, read once. Either way
// the objects go through the agent's decoders, so both show what a node computes.
import { readFile } from 'node:fs/promises';
import { overlayNodes } from '../sources/file/annotation-overlay.js';
import { AnnotationsDirReader } from '../sources/file/annotations-dir.js';
import { parseClusterFile } from '../sources/file/cluster-file.js';
import type { HeartbeatLease } from '../sources/lease.js';
import type { SourceObject, SourceObjectKind } from '../sources/source.js';
import { type Options, UsageError, type Values } from './command.js';
import { booleanFlag, stringFlag } from './flags.js';
import { kubeconfigPath } from './kubeconfig.js';

export type ClusterOrigin =
  /** annotationsDir: the agents' shared run-time annotations (the agent's --annotations-dir). */
  | { readonly kind: 'file'; readonly path: string; readonly annotationsDir?: string }
  /** `kubeconfig` undefined: in-cluster credentials. */
  | { readonly kind: 'kubernetes'; readonly kubeconfig: string | undefined };

export const SOURCE_OPTIONS: Options = {
  from: { type: 'string' },
  'annotations-dir': { type: 'string' },
  kubeconfig: { type: 'string' },
  strict: { type: 'boolean', default: false },
};

/** The source flags' help lines, their descriptions starting at `column`. */
export function sourceFlagsHelp(column: number): string {
  const rows: readonly [string, string][] = [
    ['--from FILE', 'a cluster file (Kubernetes objects); its nodes count as fresh'],
    ['--annotations-dir DIR', "with --from: the agents' shared annotations (their --annotations-dir)"],
    ['--kubeconfig FILE', 'the live cluster (default: $KUBECONFIG, else in-cluster credentials)'],
    ['--strict', 'exit 1 when any input is malformed (one warning each): lint a file'],
  ];
  return rows.map(([flag, text]) => `  ${flag.padEnd(column - 2)}${text}`).join('\n');
}

/** Which source the flags name; checked before anything is read. */
export function clusterOriginOf(values: Values): ClusterOrigin {
  const from = stringFlag(values, 'from');
  const kubeconfig = stringFlag(values, 'kubeconfig');
  if (from !== undefined && kubeconfig !== undefined) throw new UsageError('give --from FILE or --kubeconfig FILE, not both');
  if (from === '') throw new UsageError('--from needs a file');
  const annotationsDir = stringFlag(values, 'annotations-dir');
  if (annotationsDir !== undefined && from === undefined) throw new UsageError('--annotations-dir: only with --from FILE');
  if (from !== undefined) return { kind: 'file', path: from, ...(annotationsDir !== undefined && { annotationsDir }) };
  return { kind: 'kubernetes', kubeconfig: kubeconfigPath(kubeconfig, 'or give --from FILE') };
}

export function strictFlag(values: Values): boolean {
  return booleanFlag(values, 'strict');
}

/**
 * The objects of `kinds` (a file's are all of them: the decoders pick theirs). A file that does not
 * parse, or a list that fails, is an error: never a view of part of the cluster.
 */
export async function readClusterObjects(origin: ClusterOrigin, kinds: readonly SourceObjectKind[]): Promise<readonly SourceObject[]> {
  if (origin.kind === 'file') {
    const text = await readFile(origin.path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`${origin.path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    const objects = parseClusterFile(text, origin.path);
    if (origin.annotationsDir === undefined) return objects;
    const shared = new AnnotationsDirReader(origin.annotationsDir, { error: (line) => process.stderr.write(`wirelane: warning: ${line}\n`) });
    await shared.read();
    return overlayNodes(objects, shared.overlays());
  }
  const { listOnce } = await kubernetesReads();
  return listOnce(await accessOf(origin), kinds);
}

/** The agents' heartbeat Leases (none in a file: its nodes count as fresh). */
export async function readHeartbeatLeases(origin: ClusterOrigin, namespace: string): Promise<readonly HeartbeatLease[]> {
  if (origin.kind === 'file') return [];
  const { listHeartbeatLeases } = await kubernetesReads();
  return listHeartbeatLeases(await accessOf(origin), namespace);
}

/** Loaded here only: the Kubernetes client costs a file-only command its start-up time. */
function kubernetesReads(): Promise<typeof import('../sources/kubernetes/list-once.js')> {
  return import('../sources/kubernetes/list-once.js');
}

/** Its errors name the kubeconfig (or the in-cluster credentials) and what is wrong. */
async function accessOf(origin: { readonly kubeconfig: string | undefined }) {
  const { loadKubeAccess } = await import('../sources/kubernetes/kube-access.js');
  return loadKubeAccess(origin.kubeconfig);
}
