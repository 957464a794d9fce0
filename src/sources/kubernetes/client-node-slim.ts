// client-node's KubeConfig (credentials, TLS, proxies, exec and OIDC auth) without its generated API:
// the agent's own calls go over kube-request.ts. Kept apart from anything that imports config.js,
// which must load after the hook is in place.
import { register } from 'node:module';

let registered = false;

/**
 * From now on, client-node's config.js loads without the generated API (client-node-hooks.ts). Call
 * it before the first import of anything that imports config.js; the process pays for the hooks
 * thread (~11 MiB), so only kube-access.ts's fallback does. A later import of client-node's root still
 * works: it loads the generated API itself, and shares the KubeConfig class.
 */
export function registerClientNodeSlim(): void {
  if (registered) return;
  register('./client-node-hooks.js', import.meta.url);
  registered = true;
}
