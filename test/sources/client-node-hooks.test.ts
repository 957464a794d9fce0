// client-node's KubeConfig without its generated API (src/sources/kubernetes/client-node-hooks.ts), the
// fallback of kube-access.ts for what the agent's own client does not serve: the shim still has what
// config.js imports, and the Kubernetes source works through the hook against the test API server,
// with a real exec credential plugin, without the process ever loading the generated API. A plain
// kubeconfig loads no client-node at all.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { nodeLeaseName } from '../../src/sources/lease.js';
import { startKubeApiServer } from '../kube-apiserver/index.js';
import { kubeconfigYaml } from '../kube-apiserver/kubeconfig.js';
import { clientNodeModules, generatedApiModules, moduleTraceFlags, tracedModules } from '../support/module-trace.js';

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

type Loader =
  /** loadKubeAccess with a kubeconfig whose user is an exec plugin: client-node's KubeConfig through the hook. */
  | 'exec fallback'
  /** loadKubeAccess with the test server's plain kubeconfig: the agent's own client. */
  | 'plain'
  /** client-node-access.ts imported without the hook (as `wirelane connect` does, less its typed API). */
  | 'no hook';

const TOKEN = 'exec-plugin-token';

/** Runs the Kubernetes source in a child process with its module loads traced; returns their URLs. */
async function traceSource(t: TestContext, loader: Loader) {
  // Every request must carry the token: the exec plugin's, or the plain kubeconfig's.
  const server = await startKubeApiServer({ token: TOKEN });
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-client-hooks-'));
  t.after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const kubeconfig = join(dir, 'kubeconfig');
  if (loader === 'exec fallback') {
    // A real exec credential plugin: a script printing an ExecCredential, as kubelogin or aws-iam-authenticator would.
    const plugin = join(dir, 'credential-plugin');
    const credential = { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: TOKEN } };
    await writeFile(plugin, `#!/bin/sh\necho '${JSON.stringify(credential)}'\n`, { mode: 0o755 });
    const user = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: plugin, interactiveMode: 'Never' } };
    await writeFile(kubeconfig, stringify({ ...(parse(kubeconfigYaml(server.url, 'unused')) as Record<string, unknown>), users: [{ name: 'wirelane-test', user }] }));
  } else {
    await server.writeKubeconfig(kubeconfig);
  }
  server.create('nodes', { metadata: { name: 'a' } });
  // What source-choice.ts does, then one publish and one heartbeat (stop waits for the renewal).
  const child = `
const [src, kubeconfig, loader] = process.argv.slice(2);
const access = loader === 'no hook'
  ? await import(src + 'sources/kubernetes/client-node-access.ts').then((m) => m.kubeAccessOfConfig(m.loadKubeConfig(kubeconfig)))
  : await import(src + 'sources/kubernetes/kube-access.ts').then((m) => m.loadKubeAccess(kubeconfig));
const { KubernetesSource } = await import(src + 'sources/kubernetes/kubernetes-source.ts');
const { createLogger } = await import(src + 'observability/logger.ts');
const heartbeats = { namespace: 'wirelane', node: 'a', renewEveryMs: 60000, durationSeconds: 1 };
const source = new KubernetesSource(access, createLogger('silent'), true, { heartbeats });
await source.start(() => {});
if (!(await source.publisher.publishNode('a', { 'wirelane.io/key': 'K' }))) throw new Error('nothing published');
source.heartbeats.follow('east');
await source.stop();
`;
  await writeFile(join(dir, 'child.mjs'), child);
  const trace = join(dir, 'modules');
  await promisify(execFile)(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), ...moduleTraceFlags(trace), join(dir, 'child.mjs'), SRC, kubeconfig, loader],
    { cwd: ROOT, timeout: 300_000 },
  );
  return { server, modules: await tracedModules(trace) };
}

function assertWorked(server: Awaited<ReturnType<typeof traceSource>>['server']): void {
  assert.equal(server.get('nodes', 'a')?.metadata.annotations?.['wirelane.io/key'], 'K', 'the merge patch landed');
  assert.equal(server.requestsOf('patch', 'nodes')[0]?.contentType, 'application/merge-patch+json');
  assert.notEqual(server.get('leases', nodeLeaseName('a'), 'wirelane'), undefined, 'the node Lease was written');
  assert.ok(server.requestCount('list', 'nodes') > 0 && server.requestCount('watch', 'nodes') > 0, 'nodes were listed and watched');
}

test("an exec plugin's kubeconfig goes through client-node's KubeConfig behind the hook: the source works with the plugin's token, without the generated API", async (t) => {
  const { server, modules } = await traceSource(t, 'exec fallback');
  assertWorked(server);
  assert.ok(modules.some((url) => url.endsWith('/@kubernetes/client-node/dist/config.js')), 'KubeConfig was loaded');
  assert.ok(modules.some((url) => url.endsWith('/@kubernetes/client-node/dist/exec_auth.js')), 'its exec authenticator');
  assert.ok(modules.some((url) => url.endsWith('/client-node-shim.ts')), 'config.js got the shim');
  assert.deepEqual(generatedApiModules(modules), []);
});

test('a plain kubeconfig loads nothing of client-node, nor the hook', async (t) => {
  const { server, modules } = await traceSource(t, 'plain');
  assertWorked(server);
  assert.deepEqual(clientNodeModules(modules), []);
  assert.ok(!modules.some((url) => url.endsWith('/client-node-hooks.ts')), 'no hook registered');
});

test('without the hook, the same run loads the generated API (the trace above can see it)', async (t) => {
  const { server, modules } = await traceSource(t, 'no hook');
  assertWorked(server);
  assert.ok(!modules.some((url) => url.endsWith('/client-node-shim.ts')), 'no shim without the hook');
  assert.ok(generatedApiModules(modules).some((url) => url.includes('/dist/gen/models/')), 'the models were loaded');
});
