// Runs in Node's module-hooks thread, registered by client-node-slim.ts. client-node's config.js (home of
// KubeConfig) imports two names from its generated API's index, which loads every API class and
// ~850 models: ~70 MiB and most of a second the agent never uses. That one import is served from a
// shim holding just those two names (client-node-shim.ts); every other import resolves as usual.
import type { ResolveHook } from 'node:module';

const CONFIG_MODULE = '/@kubernetes/client-node/dist/config.js';

export const resolve: ResolveHook = (specifier, context, next) => {
  if (specifier === './gen/index.js' && context.parentURL?.endsWith(CONFIG_MODULE)) {
    // Through the chain, not a URL of our own: under tsx the shim is a .ts file.
    return next('./client-node-shim.js', { ...context, parentURL: import.meta.url });
  }
  return next(specifier, context);
};
