// The agent's own Node annotations through the API: a merge patch of what differs from what the
// Node watch last saw, and their removal on a clean exit or by `wirelane cleanup --annotations`.
// Bounded like every call out of the process: a hung API server costs this step, not the loop.
import { type CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { AGENT_WRITTEN, PREFIX } from '../annotations.js';
import type { KubeObject } from '../objects.js';
import type { NodePublisher } from '../source.js';
import { boundedApiCall as bounded } from './api-call.js';

export class NodeAnnotations implements NodePublisher {
  constructor(
    private readonly core: CoreV1Api,
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
    await patchAnnotations(this.core, name, { ...patch, ...alongside });
    return true;
  }

  unpublishNode(name: string): Promise<readonly string[]> {
    return removeAgentAnnotations(this.core, name);
  }
}

/**
 * The agent-written annotations the Node has, removed with a merge patch (null removes a key). A
 * list by name, not a get: the agent's RBAC grants list, watch and patch on nodes.
 */
export async function removeAgentAnnotations(core: CoreV1Api, node: string): Promise<string[]> {
  const { items } = await bounded(core.listNode({ fieldSelector: `metadata.name=${node}` }), `listing node ${node}`);
  const present = Object.keys(items[0]?.metadata?.annotations ?? {}).filter((key) => AGENT_WRITTEN.some((suffix) => key === PREFIX + suffix));
  if (present.length === 0) return [];
  await patchAnnotations(core, node, Object.fromEntries(present.map((key) => [key, null])));
  return [`Node ${node}: ${present.sort().join(', ')}`];
}

async function patchAnnotations(core: CoreV1Api, node: string, annotations: Readonly<Record<string, string | null>>): Promise<void> {
  await bounded(core.patchNode({ name: node, body: { metadata: { annotations } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)), `PATCH node ${node}`);
}
