// What a kubeconfig (or a pod's service-account credentials) says about reaching the API server, as
// far as the agent's own client (kube-access.ts) serves it: the current context's cluster (server,
// CA, insecure-skip-tls-verify, tls-server-name) and user (token, tokenFile, client certificate and
// key, basic auth). Anything else (exec, auth-provider, proxy-url, impersonation, ...) is left to
// client-node's KubeConfig: the plan says so instead of guessing. Pure: the document is parsed and
// the environment read by the caller; no file is read here.
import { isAbsolute, join } from 'node:path';
import { isRecord } from '../objects.js';

/** A CA, certificate or key: a file read at each request (so a rotated one is picked up), or inline data. */
export type PemSource = { readonly kind: 'file'; readonly path: string } | { readonly kind: 'data'; readonly data: Buffer };

export type TokenSource = { readonly kind: 'inline'; readonly token: string } | { readonly kind: 'file'; readonly path: string };

export interface ClusterAccess {
  /** Without a trailing slash: request paths are appended (the URL may carry a path prefix). */
  readonly server: string;
  readonly ca?: PemSource;
  readonly skipTlsVerify: boolean;
  readonly tlsServerName?: string;
}

export interface UserAccess {
  readonly token?: TokenSource;
  readonly basic?: { readonly username: string; readonly password: string };
  readonly cert?: PemSource;
  readonly key?: PemSource;
}

export type AccessPlan =
  | { readonly kind: 'own'; readonly cluster: ClusterAccess; readonly user: UserAccess }
  /** `why`: the fields that need client-node (for the debug log). */
  | { readonly kind: 'client-node'; readonly why: string };

export class KubeconfigError extends Error {
  override readonly name = 'KubeconfigError';
}

// `extensions` carry tools' own metadata (minikube writes them); neither client reads them.
const CLUSTER_FIELDS = new Set(['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'extensions']);
const USER_FIELDS = new Set(['token', 'tokenFile', 'client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'username', 'password', 'extensions']);

/**
 * The plan for a parsed kubeconfig document read from `file`; relative file paths resolve against
 * the file's directory, as kubectl does. Throws a KubeconfigError naming what is wrong.
 */
export function planOfKubeconfig(doc: unknown, file: string, dir: string): AccessPlan {
  const fail = (what: string): never => {
    throw new KubeconfigError(`kubeconfig ${file}: ${what}`);
  };
  if (!isRecord(doc)) return fail('not a kubeconfig (expected a mapping with clusters, users, contexts)');
  const contextName = doc['current-context'];
  if (typeof contextName !== 'string' || contextName === '') return fail('no current-context');
  const context = entryOf(doc, 'contexts', 'context', contextName) ?? fail(`current-context "${contextName}" is not among its contexts`);
  const clusterName = context['cluster'];
  if (typeof clusterName !== 'string' || clusterName === '') return fail(`context "${contextName}" names no cluster`);
  const cluster = entryOf(doc, 'clusters', 'cluster', clusterName) ?? fail(`cluster "${clusterName}" (of context "${contextName}") is not among its clusters`);
  const userName = context['user'];
  // A context without a user is anonymous access; one naming a user that is not there is a mistake.
  const user = typeof userName === 'string' && userName !== '' ? (entryOf(doc, 'users', 'user', userName) ?? fail(`user "${userName}" (of context "${contextName}") is not among its users`)) : {};

  const foreign = [
    ...Object.keys(cluster).filter((k) => !CLUSTER_FIELDS.has(k) && present(cluster[k])).map((k) => `cluster ${k}`),
    ...Object.keys(user).filter((k) => !USER_FIELDS.has(k) && present(user[k])).map((k) => `user ${k}`),
  ];
  if (foreign.length > 0) return { kind: 'client-node', why: foreign.join(', ') };

  const where = (entry: string, key: string): string => `${entry}: ${key}`;
  const str = (obj: Record<string, unknown>, entry: string, key: string): string | undefined => {
    const value = obj[key];
    // Empty means absent, as in both clients.
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value !== 'string') return fail(`${where(entry, key)} is not a string`);
    return value;
  };
  const path = (p: string): string => (isAbsolute(p) ? p : join(dir, p));
  const pem = (obj: Record<string, unknown>, entry: string, fileKey: string): PemSource | undefined => {
    // The file wins over the data when both are given (client-node's bufferFromFileOrString).
    const filePath = str(obj, entry, fileKey);
    if (filePath !== undefined) return { kind: 'file', path: path(filePath) };
    const data = str(obj, entry, `${fileKey}-data`);
    if (data === undefined) return undefined;
    if (!/^[A-Za-z0-9+/=\s]*$/.test(data)) return fail(`${where(entry, `${fileKey}-data`)} is not base64`);
    return { kind: 'data', data: Buffer.from(data, 'base64') };
  };

  const clusterEntry = `cluster "${clusterName}"`;
  const server = (str(cluster, clusterEntry, 'server') ?? fail(`${clusterEntry} has no server`)).replace(/\/$/, '');
  const skip = cluster['insecure-skip-tls-verify'];
  const ca = pem(cluster, clusterEntry, 'certificate-authority');
  const tlsServerName = str(cluster, clusterEntry, 'tls-server-name');
  const clusterAccess: ClusterAccess = {
    server,
    // Only a YAML true counts, as in client-node (a string "true" does not).
    skipTlsVerify: skip === true,
    ...(ca && { ca }),
    ...(tlsServerName !== undefined && { tlsServerName }),
  };
  checkServer(clusterAccess, (what) => fail(`${clusterEntry}: ${what}`));

  const userEntry = `user "${String(userName)}"`;
  const token = str(user, userEntry, 'token');
  const tokenFile = str(user, userEntry, 'tokenFile');
  const username = str(user, userEntry, 'username');
  const password = str(user, userEntry, 'password');
  const cert = pem(user, userEntry, 'client-certificate');
  const key = pem(user, userEntry, 'client-key');
  if ((cert === undefined) !== (key === undefined)) fail(`${userEntry}: ${cert ? 'client-certificate without client-key' : 'client-key without client-certificate'}`);
  return {
    kind: 'own',
    cluster: clusterAccess,
    user: {
      // An inline token wins over a token file (client-node reads no tokenFile at all).
      ...(token !== undefined ? { token: { kind: 'inline', token } } : tokenFile !== undefined && { token: { kind: 'file', path: path(tokenFile) } }),
      ...(username !== undefined && { basic: { username, password: password ?? '' } }),
      ...(cert && { cert }),
      ...(key && { key }),
    },
  };
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * A pod's credentials: the API server from KUBERNETES_SERVICE_HOST/_PORT (https, but plain http on
 * 80, 8080 and 8001, as client-node decides), the service account's CA and (re-read) token.
 */
export function planInCluster(env: Readonly<Record<string, string | undefined>>, dir: string = SERVICE_ACCOUNT_DIR): AccessPlan {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  if (!host || !port) throw new KubeconfigError('in-cluster credentials: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod? give --kubeconfig)');
  const scheme = port === '80' || port === '8080' || port === '8001' ? 'http' : 'https';
  const cluster: ClusterAccess = { server: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`, ca: { kind: 'file', path: join(dir, 'ca.crt') }, skipTlsVerify: false };
  checkServer(cluster, (what) => {
    throw new KubeconfigError(`in-cluster credentials: ${what}`);
  });
  return { kind: 'own', cluster, user: { token: { kind: 'file', path: join(dir, 'token') } } };
}

function checkServer(cluster: ClusterAccess, fail: (what: string) => never): void {
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    return fail(`server "${cluster.server}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') fail(`server "${cluster.server}" is not http(s)`);
  // client-node refuses a plain http server unless TLS verification is explicitly off (createAgent).
  if (url.protocol === 'http:' && !cluster.skipTlsVerify) fail(`server "${cluster.server}" is plain http: that needs insecure-skip-tls-verify: true`);
}

/** The named entry's inner mapping (`clusters[].cluster`, ...); the first of that name, as client-node finds it. */
function entryOf(doc: Record<string, unknown>, list: string, key: string, name: string): Record<string, unknown> | undefined {
  const entries = doc[list];
  if (!Array.isArray(entries)) return undefined;
  const entry: unknown = entries.find((e) => isRecord(e) && e['name'] === name);
  if (!isRecord(entry)) return undefined;
  const inner = entry[key];
  return isRecord(inner) ? inner : {};
}

function present(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '' && !(Array.isArray(value) && value.length === 0) && !(isRecord(value) && Object.keys(value).length === 0);
}
