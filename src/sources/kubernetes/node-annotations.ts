// The agent's own Node annotations through the API: a merge patch of what differs from what the
// Node watch last saw, and their removal on a clean exit or by `wirelane cleanup --annotations`.
// Bounded like every call out of the process: a hung API server costs this step, not the loop.
import type { KubeAccess } from './kube-access.js';
import { defaultCommandTimeoutMs } from '../../host/timeouts.js';
import { AGENT_WRITTEN, PREFIX } from '../annotations.js';
import { type KubeObject, isRecord } from '../objects.js';
import type { NodePublisher } from '../source.js';
import { type KubeRequest, kubeCall } from './kube-request.js';

/** Who writes: the API access, and the User-Agent that names the agent (absent for the CLI). */
export interface NodeWriter {
  readonly access: KubeAccess;
  readonly userAgent?: string;
}

export class NodeAnnotations implements NodePublisher {
  constructor(
    private readonly writer: NodeWriter,
    /** The Node as the watch last saw it; undefined before it was seen. */
    private readonly lastSeen: (name: string) => KubeObject | undefined,
  ) {}

  async publishNode(name: string, annotations: Readonly<Record<string, string | null>>, alongside: Readonly<Record<string, string>> = {}): Promise<boolean> {
    const current = this.lastSeen(name)?.metadata?.annotations ?? {};
    // Only send what differs from what the watch last saw: idle resyncs write nothing.
    const patch = Object.fromEntries(
      Object.entries(annotations).filter(([k, v]) => (v === null ? k in current : current[k] !== v)),
    );
    if (Object.keys(patch).length === 0) return false;
    await patchAnnotations(this.writer, name, { ...patch, ...alongside });
    return true;
  }

  unpublishNode(name: string): Promise<readonly string[]> {
    return removeAgentAnnotations(this.writer, name);
  }
}

/**
 * The agent-written annotations the Node has, removed with a merge patch (null removes a key). A
 * list by name, not a get: the agent's RBAC grants list, watch and patch on nodes.
 */
export async function removeAgentAnnotations(writer: NodeWriter, node: string): Promise<string[]> {
  const list = await call(writer, { method: 'GET', path: '/api/v1/nodes', query: { fieldSelector: `metadata.name=${node}` } }, `listing node ${node}`);
  const first: unknown = Array.isArray(list.items) ? list.items[0] : undefined;
  const metadata = isRecord(first) && isRecord(first.metadata) ? first.metadata : {};
  const annotations = isRecord(metadata.annotations) ? metadata.annotations : {};
  const present = Object.keys(annotations).filter((key) => AGENT_WRITTEN.some((suffix) => key === PREFIX + suffix));
  if (present.length === 0) return [];
  await patchAnnotations(writer, node, Object.fromEntries(present.map((key) => [key, null])));
  return [`Node ${node}: ${present.sort().join(', ')}`];
}

async function patchAnnotations(writer: NodeWriter, node: string, annotations: Readonly<Record<string, string | null>>): Promise<void> {
  const body = { value: { metadata: { annotations } }, contentType: 'application/merge-patch+json' };
  await call(writer, { method: 'PATCH', path: `/api/v1/nodes/${encodeURIComponent(node)}`, body }, `PATCH node ${node}`);
}

function call(writer: NodeWriter, req: KubeRequest, what: string): Promise<Record<string, unknown>> {
  return kubeCall(writer.access, { ...req, ...(writer.userAgent !== undefined && { userAgent: writer.userAgent }) }, defaultCommandTimeoutMs(), what);
}
