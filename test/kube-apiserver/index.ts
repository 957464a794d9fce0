// Test-only stand-in for a Kubernetes API server; see server.ts.
export {
  type Delivered,
  KubeApiServer,
  type KubeApiServerOptions,
  type RequestRecord,
  type RequestVerb,
  type WatchEvent,
  type WatchEventType,
  startKubeApiServer,
} from './server.js';
export { defaultTestToken, kubeconfigYaml, writeKubeconfig } from './kubeconfig.js';
export { type ResourceName, type ResourceType, apiVersionOf, resourceTypes } from './resources.js';
export type { KubeObject, ObjectMeta, ObjectRef } from './store.js';
export { type Status, StatusError } from './status.js';
