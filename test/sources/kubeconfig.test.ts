// The kubeconfig parser (src/sources/kubernetes/kubeconfig.ts): every field the agent's own client
// serves, relative paths, inline data, what is wrong named, and which kubeconfigs go to client-node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AccessPlan, KubeconfigError, planInCluster, planOfKubeconfig } from '../../src/sources/kubernetes/kubeconfig.js';

const FILE = '/etc/wirelane/kubeconfig';
const DIR = '/etc/wirelane';

/** A kubeconfig whose current context joins `cluster` and `user`, next to others that must not be read. */
function doc(cluster: Record<string, unknown>, user?: Record<string, unknown>, context: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name: 'other', cluster: { server: 'https://other:6443', 'proxy-url': 'socks5://nowhere:1080' } },
      { name: 'c', cluster },
    ],
    users: [{ name: 'other', user: { exec: { command: 'nowhere' } } }, ...(user ? [{ name: 'u', user }] : [])],
    contexts: [
      { name: 'other', context: { cluster: 'other', user: 'other' } },
      { name: 'ctx', context: { cluster: 'c', ...(user && { user: 'u' }), namespace: 'kube-system', ...context } },
    ],
    'current-context': 'ctx',
  };
}

function own(plan: AccessPlan): Extract<AccessPlan, { kind: 'own' }> {
  assert.equal(plan.kind, 'own', plan.kind === 'client-node' ? plan.why : '');
  return plan as Extract<AccessPlan, { kind: 'own' }>;
}

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const b64 = (text: string): string => Buffer.from(text).toString('base64');

test('the current context picks the cluster and user; every field the own client serves lands in the plan', () => {
  const plan = own(
    planOfKubeconfig(
      doc(
        { server: 'https://api.example:6443/', 'certificate-authority-data': b64(PEM), 'tls-server-name': 'kubernetes', extensions: [{ name: 'x', extension: {} }] },
        { token: 'abc', username: 'admin', password: 'pw', 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') },
      ),
      FILE,
      DIR,
    ),
  );
  assert.deepEqual(plan.cluster, { server: 'https://api.example:6443', skipTlsVerify: false, ca: { kind: 'data', data: Buffer.from(PEM) }, tlsServerName: 'kubernetes' });
  assert.deepEqual(plan.user, {
    token: { kind: 'inline', token: 'abc' },
    basic: { username: 'admin', password: 'pw' },
    cert: { kind: 'data', data: Buffer.from('CERT') },
    key: { kind: 'data', data: Buffer.from('KEY') },
  });
});

test('file paths resolve against the kubeconfig directory unless absolute', () => {
  const plan = own(
    planOfKubeconfig(doc({ server: 'https://api:6443', 'certificate-authority': 'pki/ca.crt' }, { tokenFile: '../token', 'client-certificate': '/abs/cert.pem', 'client-key': 'key.pem' }), FILE, DIR),
  );
  assert.deepEqual(plan.cluster.ca, { kind: 'file', path: '/etc/wirelane/pki/ca.crt' });
  assert.deepEqual(plan.user.token, { kind: 'file', path: '/etc/token' });
  assert.deepEqual(plan.user.cert, { kind: 'file', path: '/abs/cert.pem' });
  assert.deepEqual(plan.user.key, { kind: 'file', path: '/etc/wirelane/key.pem' });
});

test('a file wins over inline data, an inline token over a token file (as client-node)', () => {
  const plan = own(planOfKubeconfig(doc({ server: 'https://api', 'certificate-authority': 'ca', 'certificate-authority-data': b64(PEM) }, { token: 't', tokenFile: 'f' }), FILE, DIR));
  assert.deepEqual(plan.cluster.ca, { kind: 'file', path: '/etc/wirelane/ca' });
  assert.deepEqual(plan.user.token, { kind: 'inline', token: 't' });
});

test('insecure-skip-tls-verify counts only as a YAML true; a plain http server needs it', () => {
  assert.equal(own(planOfKubeconfig(doc({ server: 'http://127.0.0.1:8080', 'insecure-skip-tls-verify': true }, { token: 't' }), FILE, DIR)).cluster.skipTlsVerify, true);
  assert.equal(own(planOfKubeconfig(doc({ server: 'https://api', 'insecure-skip-tls-verify': 'true' }), FILE, DIR)).cluster.skipTlsVerify, false);
  assert.throws(() => planOfKubeconfig(doc({ server: 'http://127.0.0.1:8080' }), FILE, DIR), {
    name: 'KubeconfigError',
    message: 'kubeconfig /etc/wirelane/kubeconfig: cluster "c": server "http://127.0.0.1:8080" is plain http: that needs insecure-skip-tls-verify: true',
  });
});

test('a context without a user is anonymous; a password without a username is no basic auth', () => {
  assert.deepEqual(own(planOfKubeconfig(doc({ server: 'https://api' }), FILE, DIR)).user, {});
  assert.deepEqual(own(planOfKubeconfig(doc({ server: 'https://api' }, { password: 'pw' }), FILE, DIR)).user, {});
  assert.deepEqual(own(planOfKubeconfig(doc({ server: 'https://api' }, { username: 'admin' }), FILE, DIR)).user, { basic: { username: 'admin', password: '' } });
});

test('what the own client does not serve goes to client-node, saying which fields', () => {
  const cases: [Record<string, unknown>, Record<string, unknown> | undefined, string][] = [
    [{ server: 'https://api' }, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'get-token' } }, 'user exec'],
    [{ server: 'https://api' }, { 'auth-provider': { name: 'oidc', config: {} } }, 'user auth-provider'],
    [{ server: 'https://api' }, { token: 't', as: 'someone', 'as-groups': ['g'] }, 'user as, user as-groups'],
    [{ server: 'https://api', 'proxy-url': 'http://proxy:3128' }, { token: 't' }, 'cluster proxy-url'],
    // client-node's own spelling of a token file: read once at load by it, so left to it.
    [{ server: 'https://api' }, { 'token-file': '/t' }, 'user token-file'],
  ];
  for (const [cluster, user, why] of cases) assert.deepEqual(planOfKubeconfig(doc(cluster, user), FILE, DIR), { kind: 'client-node', why });
  // An empty field is no field.
  assert.equal(planOfKubeconfig(doc({ server: 'https://api', 'proxy-url': '' }, { exec: null }), FILE, DIR).kind, 'own');
});

test('what is wrong is named, with the file', () => {
  const wrong: [unknown, string][] = [
    ['just text', 'not a kubeconfig (expected a mapping with clusters, users, contexts)'],
    [{ ...doc({ server: 'https://api' }), 'current-context': undefined }, 'no current-context'],
    [{ ...doc({ server: 'https://api' }), 'current-context': '' }, 'no current-context'],
    [{ ...doc({ server: 'https://api' }), 'current-context': 'gone' }, 'current-context "gone" is not among its contexts'],
    [doc({ server: 'https://api' }, undefined, { cluster: 'missing' }), 'cluster "missing" (of context "ctx") is not among its clusters'],
    [doc({ server: 'https://api' }, undefined, { cluster: '' }), 'context "ctx" names no cluster'],
    [doc({ server: 'https://api' }, undefined, { user: 'nobody' }), 'user "nobody" (of context "ctx") is not among its users'],
    [doc({ 'insecure-skip-tls-verify': true }), 'cluster "c" has no server'],
    [doc({ server: 'api.example:6443' }), 'cluster "c": server "api.example:6443" is not http(s)'],
    [doc({ server: 'not a url' }), 'cluster "c": server "not a url" is not a URL'],
    [doc({ server: 'https://api', 'certificate-authority-data': 'not*base64' }), 'cluster "c": certificate-authority-data is not base64'],
    [doc({ server: 'https://api' }, { token: 42 }), 'user "u": token is not a string'],
    [doc({ server: 'https://api' }, { 'client-certificate': 'c.pem' }), 'user "u": client-certificate without client-key'],
    [doc({ server: 'https://api' }, { 'client-key-data': b64('KEY') }), 'user "u": client-key without client-certificate'],
  ];
  for (const [input, message] of wrong) {
    assert.throws(() => planOfKubeconfig(input, FILE, DIR), (err: unknown) => {
      assert.ok(err instanceof KubeconfigError);
      assert.equal(err.message, `kubeconfig ${FILE}: ${message}`);
      return true;
    });
  }
});

test('in a pod: the service host and port, its CA and token; http only on the ports client-node takes as http', () => {
  const dir = '/run/sa';
  assert.deepEqual(planInCluster({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, dir), {
    kind: 'own',
    cluster: { server: 'https://10.96.0.1:443', ca: { kind: 'file', path: '/run/sa/ca.crt' }, skipTlsVerify: false },
    user: { token: { kind: 'file', path: '/run/sa/token' } },
  });
  const v6 = own(planInCluster({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, dir));
  assert.equal(v6.cluster.server, 'https://[fd00::1]:6443');
  // client-node takes 80, 8080 and 8001 as http, which it then refuses without skipping TLS verification.
  assert.throws(() => planInCluster({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '8080' }, dir), {
    message: 'in-cluster credentials: server "http://10.96.0.1:8080" is plain http: that needs insecure-skip-tls-verify: true',
  });
  for (const env of [{}, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, { KUBERNETES_SERVICE_PORT: '443' }]) {
    assert.throws(() => planInCluster(env, dir), {
      name: 'KubeconfigError',
      message: 'in-cluster credentials: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod? give --kubeconfig)',
    });
  }
});
