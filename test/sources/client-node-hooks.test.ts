// client-node's KubeConfig without its generated API (src/sources/kubernetes/client-node-hooks.ts):
// the shim still has what config.js imports, and the Kubernetes source works through the hook
// against the test API server without the process ever loading the generated API.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { nodeLeaseName } from '../../src/sources/lease.js';
import { startKubeApiServer } from '../kube-apiserver/index.js';
import { generatedApiModules, moduleTraceFlags, tracedModules } from '../support/module-trace.js';

const SRC = new URL('../../src/', import.meta.url).href;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test("the shim exports exactly what client-node's config.js imports from its generated API's index", async () => {
  const config = await readFile(fileURLToPath(import.meta.resolve('@kubernetes/client-node/dist/config.js')), 'utf8');
  const statements = [...config.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]\.\/gen\/index\.js['"]/g)];
  // Any other form (a namespace import, a re-export, a dynamic import) would need more than a shim.
  assert.equal(statements.length, config.split('./gen/index.js').length - 1, "every mention of './gen/index.js' in config.js is a named import");
  assert.ok(statements.length > 0, "config.js imports from './gen/index.js' (else the hook has nothing to do: drop it)");
  const imported = statements.flatMap((m) => m[1]!.split(',').map((name) => name.trim().split(/\s+as\s+/)[0]!)).filter((name) => name !== '');
  const shim = (await import('../../src/sources/kubernetes/client-node-shim.js')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(shim).sort(), [...new Set(imported)].sort());
  for (const name of imported) assert.notEqual(shim[name], undefined, `the shim's ${name} is defined`);
});

/** Runs the Kubernetes source in a child process with its module loads traced; returns their URLs. */
async function traceSource(t: TestContext, withHook: boolean) {
  const server = await startKubeApiServer();
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-client-hooks-'));
  t.after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  await server.writeKubeconfig(join(dir, 'kubeconfig'));
  server.create('nodes', { metadata: { name: 'a' } });
  // What source-choice.ts does, then one publish and one heartbeat (stop waits for the renewal).
  const child = `
const [src, kubeconfig, withHook] = process.argv.slice(2);
const { registerClientNodeSlim } = await import(src + 'sources/kubernetes/client-node-slim.ts');
if (withHook === 'true') registerClientNodeSlim();
const { KubernetesSource, loadKubeConfig } = await import(src + 'sources/kubernetes/kubernetes-source.ts');
const { createLogger } = await import(src + 'observability/logger.ts');
const heartbeats = { namespace: 'wirelane', node: 'a', renewEveryMs: 60000, durationSeconds: 1 };
const source = new KubernetesSource(loadKubeConfig(kubeconfig), createLogger('silent'), true, { heartbeats });
await source.start(() => {});
if (!(await source.publisher.publishNode('a', { 'wirelane.io/key': 'K' }))) throw new Error('nothing published');
source.heartbeats.follow('east');
await source.stop();
`;
  await writeFile(join(dir, 'child.mjs'), child);
  const trace = join(dir, 'modules');
  await promisify(execFile)(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), ...moduleTraceFlags(trace), join(dir, 'child.mjs'), SRC, join(dir, 'kubeconfig'), String(withHook)],
    { cwd: ROOT, timeout: 300_000 },
  );
  return { server, modules: await tracedModules(trace) };
}

test('through the hook, the Kubernetes source lists, patches its Node and renews its Lease without loading the generated API', async (t) => {
  const { server, modules } = await traceSource(t, true);
  assert.equal(server.get('nodes', 'a')?.metadata.annotations?.['wirelane.io/key'], 'K', 'the merge patch landed');
  assert.equal(server.requestsOf('patch', 'nodes')[0]?.contentType, 'application/merge-patch+json');
  assert.notEqual(server.get('leases', nodeLeaseName('a'), 'wirelane'), undefined, 'the node Lease was written');
  assert.ok(server.requestCount('list', 'nodes') > 0 && server.requestCount('watch', 'nodes') > 0, 'nodes were listed and watched');
  assert.ok(modules.some((url) => url.endsWith('/@kubernetes/client-node/dist/config.js')), 'KubeConfig was loaded');
  assert.ok(modules.some((url) => url.endsWith('/client-node-shim.ts')), 'config.js got the shim');
  assert.deepEqual(generatedApiModules(modules), []);
});

test('without the hook, the same run loads the generated API (the trace above can see it)', async (t) => {
  const { server, modules } = await traceSource(t, false);
  assert.equal(server.get('nodes', 'a')?.metadata.annotations?.['wirelane.io/key'], 'K');
  assert.ok(!modules.some((url) => url.endsWith('/client-node-shim.ts')), 'no shim without the hook');
  assert.ok(generatedApiModules(modules).some((url) => url.includes('/dist/gen/models/')), 'the models were loaded');
});
