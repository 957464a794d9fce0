// The agent's own kubeconfig client (src/sources/kubernetes/kube-access.ts): credentials and TLS on
// real requests, to an https server with certificates made here by openssl (a CA the kubeconfig
// names, a client certificate the server checks, tls-server-name) and to the test API server; a
// token file re-read at most once a minute; errors that name the file and what is wrong.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { FileToken, PlainKubeAccess, TOKEN_FILE_REREAD_MS, loadKubeAccess } from '../../src/sources/kubernetes/kube-access.js';
import { kubeCall } from '../../src/sources/kubernetes/kube-request.js';
import { startKubeApiServer } from '../kube-apiserver/index.js';

const run = promisify(execFile);

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-kube-access-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A self-signed certificate and key (a CA of its own), valid for `san`. */
async function selfSigned(dir: string, name: string, san: string): Promise<void> {
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`), '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`,
  ]);
}

interface Seen {
  readonly authorization: string | undefined;
  /** The CN of the client certificate the server verified, if any. */
  readonly clientCn: string | undefined;
}

/** An https server with the `server` certificate that asks for (and verifies against `client`) a client certificate. */
async function startHttps(t: TestContext, dir: string): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server: Server = createServer(
    { cert: await readFile(join(dir, 'server.crt')), key: await readFile(join(dir, 'server.key')), ca: await readFile(join(dir, 'client.crt')), requestCert: true, rejectUnauthorized: false },
    (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket as TLSSocket;
      const cn = socket.authorized ? socket.getPeerCertificate().subject?.CN : undefined;
      seen.push({ authorization: req.headers.authorization, clientCn: typeof cn === 'string' ? cn : undefined });
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ kind: 'NodeList', items: [] }));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function writeKubeconfig(path: string, cluster: Record<string, unknown>, user: Record<string, unknown>): Promise<void> {
  await writeFile(path, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster }], users: [{ name: 'u', user }], contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }], 'current-context': 'x' }));
}

const GET = { method: 'GET', path: '/api/v1/nodes' } as const;

test('over TLS: the CA verifies the server under its tls-server-name, the client certificate and token file are sent', async (t) => {
  const dir = await tempDir(t);
  await selfSigned(dir, 'server', 'DNS:kubernetes');
  await selfSigned(dir, 'client', 'DNS:wirelane-node');
  await writeFile(join(dir, 'token'), 'file-token\n');
  const { url, seen } = await startHttps(t, dir);
  // Relative paths: resolved against the kubeconfig's directory.
  const kubeconfig = join(dir, 'kubeconfig');
  await writeKubeconfig(kubeconfig, { server: url, 'certificate-authority': 'server.crt', 'tls-server-name': 'kubernetes' }, { 'client-certificate': 'client.crt', 'client-key': 'client.key', tokenFile: 'token' });

  const access = await loadKubeAccess(kubeconfig);
  assert.ok(access instanceof PlainKubeAccess, 'a plain kubeconfig is served by the own client');
  assert.deepEqual(await kubeCall(access, GET, 10_000, 'listing nodes'), { kind: 'NodeList', items: [] });
  assert.deepEqual(seen, [{ authorization: 'Bearer file-token', clientCn: 'client' }]);

  // The same as inline data, with a bearer token.
  const data = async (name: string): Promise<string> => (await readFile(join(dir, name))).toString('base64');
  await writeKubeconfig(kubeconfig, { server: url, 'certificate-authority-data': await data('server.crt'), 'tls-server-name': 'kubernetes' }, { 'client-certificate-data': await data('client.crt'), 'client-key-data': await data('client.key'), token: 'inline' });
  await kubeCall(await loadKubeAccess(kubeconfig), GET, 10_000, 'listing nodes');
  assert.deepEqual(seen[1], { authorization: 'Bearer inline', clientCn: 'client' });
});

test('over TLS: a server the CA does not vouch for, or a name it was not issued for, is refused; insecure-skip-tls-verify reaches it', async (t) => {
  const dir = await tempDir(t);
  await selfSigned(dir, 'server', 'DNS:kubernetes');
  await selfSigned(dir, 'client', 'DNS:wirelane-node');
  const { url, seen } = await startHttps(t, dir);
  const kubeconfig = join(dir, 'kubeconfig');

  await writeKubeconfig(kubeconfig, { server: url, 'certificate-authority': 'server.crt' }, { username: 'admin', password: 'pw' });
  await assert.rejects(kubeCall(await loadKubeAccess(kubeconfig), GET, 10_000, 'listing nodes'), /IP: 127\.0\.0\.1 is not in the cert's list/);
  await writeKubeconfig(kubeconfig, { server: url, 'certificate-authority': 'client.crt', 'tls-server-name': 'kubernetes' }, {});
  await assert.rejects(kubeCall(await loadKubeAccess(kubeconfig), GET, 10_000, 'listing nodes'), /self-signed certificate/);
  assert.equal(seen.length, 0);

  await writeKubeconfig(kubeconfig, { server: url, 'insecure-skip-tls-verify': true }, { username: 'admin', password: 'pw' });
  await kubeCall(await loadKubeAccess(kubeconfig), GET, 10_000, 'listing nodes');
  assert.deepEqual(seen, [{ authorization: `Basic ${Buffer.from('admin:pw').toString('base64')}`, clientCn: undefined }]);
});

test("the test API server's plain-http kubeconfig is served by the own client", async (t) => {
  const dir = await tempDir(t);
  const server = await startKubeApiServer({ token: 'sekrit' });
  t.after(() => server.close());
  await server.writeKubeconfig(join(dir, 'kubeconfig'));
  server.create('nodes', { metadata: { name: 'a' } });
  const access = await loadKubeAccess(join(dir, 'kubeconfig'));
  assert.ok(access instanceof PlainKubeAccess);
  const list = await kubeCall(access, GET, 10_000, 'listing nodes');
  assert.equal((list.items as unknown[]).length, 1);
});

test('a token file is read again at most once a minute; a failed re-read keeps the token read before', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'token');
  let now = 1_000_000;
  const token = new FileToken(path, () => now);
  await assert.rejects(token.read(), { code: 'ENOENT' }, 'the first read must succeed');
  await writeFile(path, ' first \n');
  assert.equal(await token.read(), 'first');
  await writeFile(path, 'rotated');
  now += TOKEN_FILE_REREAD_MS - 1;
  assert.equal(await token.read(), 'first', 'not read again within the minute');
  now += 1;
  assert.equal(await token.read(), 'rotated');
  await rm(path);
  now += TOKEN_FILE_REREAD_MS;
  assert.equal(await token.read(), 'rotated', 'a failed re-read keeps the last token');
  await writeFile(path, '');
  assert.equal(await token.read(), 'rotated', 'an empty file is no token');
});

test('a missing or malformed kubeconfig, or a file it names that is not there, is one line naming it', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'kubeconfig');
  await assert.rejects(loadKubeAccess(path), { name: 'KubeconfigError', message: `kubeconfig ${path}: no such file` });
  await writeFile(path, 'clusters: [\n');
  await assert.rejects(loadKubeAccess(path), (err: Error) => err.message.startsWith(`kubeconfig ${path}: not YAML: `) && !err.message.includes('\n'));
  await writeKubeconfig(path, { server: 'https://127.0.0.1:1', 'certificate-authority': 'ca.crt' }, {});
  await assert.rejects(loadKubeAccess(path), { message: `kubeconfig ${path}: certificate-authority ${join(dir, 'ca.crt')}: no such file` });
  await writeKubeconfig(path, { server: 'https://127.0.0.1:1' }, { tokenFile: '/nonexistent/token' });
  await assert.rejects(loadKubeAccess(path), { message: `kubeconfig ${path}: token file /nonexistent/token: no such file` });
  // The fallback's own failures are named the same way.
  await writeKubeconfig(path, { server: 'https://127.0.0.1:1' }, { 'token-file': '/nonexistent/token' });
  await assert.rejects(loadKubeAccess(path), (err: Error) => err.message.startsWith(`kubeconfig ${path}: ENOENT`));
});
