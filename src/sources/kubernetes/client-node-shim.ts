// What client-node's config.js imports from './gen/index.js', and nothing else (client-node-hooks.ts;
// test/sources/client-node-hooks.test.ts fails when an upgrade makes config.js want more).
export { createConfiguration } from '@kubernetes/client-node/dist/gen/configuration.js';
export { ServerConfiguration } from '@kubernetes/client-node/dist/gen/servers.js';
