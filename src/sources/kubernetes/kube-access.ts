// How the agent reaches the API server: the server's URL and the credentials and TLS settings of each
// request. A plain kubeconfig (token, client certificate, CA, ...) and a pod's service account are
// served here over node:https alone; anything more (exec, auth-provider, proxy-url, impersonation)
// goes to client-node's KubeConfig as before, loaded then and only then (client-node-access.ts):
// it costs the process a module-hooks thread and js-yaml, node-fetch, every auth plugin and the proxy
// agents, ~10 MiB or more that a DaemonSet's service account never needs.
import { readFile } from 'node:fs/promises';
import type { RequestOptions } from 'node:https';
import { dirname } from 'node:path';
import type { Logger } from '../../observability/logger.js';
import { errorLine } from '../../observability/first-line.js';
import { yamlParser } from '../yaml-parser.js';
import { registerClientNodeSlim } from './client-node-slim.js';
import { type AccessPlan, type ClusterAccess, KubeconfigError, type PemSource, type UserAccess, planInCluster, planOfKubeconfig } from './kubeconfig.js';

/** What a request to the API server needs from a kubeconfig (kube-request.ts). */
export interface KubeAccess {
  /** The API server's URL without a trailing slash: request paths are appended to it. */
  readonly server: string;
  /** Sets one request's credentials and TLS options (Authorization, CA, client certificate, ...). */
  applyTo(options: RequestOptions): Promise<void>;
}

/**
 * The kubeconfig at `path`, or the pod's service account when `path` is undefined. The choice of
 * client is made here, once. A missing or malformed kubeconfig, or a file it names that cannot be
 * read, throws one line naming the file and what is wrong.
 */
export async function loadKubeAccess(path: string | undefined, log?: Logger): Promise<KubeAccess> {
  const plan = path === undefined ? planInCluster(process.env) : planOfKubeconfig(await readKubeconfig(path), path, dirname(path));
  const what = path === undefined ? 'in-cluster credentials' : `kubeconfig ${path}`;
  if (plan.kind === 'client-node') {
    log?.debug({ kubeconfig: path, client: 'client-node', why: plan.why }, `${what}: through client-node's KubeConfig (${plan.why})`);
    registerClientNodeSlim(); // before anything imports client-node's config.js
    const { loadKubeConfig, kubeAccessOfConfig } = await import('./client-node-access.js');
    try {
      return kubeAccessOfConfig(loadKubeConfig(path));
    } catch (err) {
      throw new KubeconfigError(`${what}: ${errorLine(err)}`);
    }
  }
  log?.debug({ kubeconfig: path, client: 'own' }, `${what}: through the agent's own client`);
  const access = new PlainKubeAccess(plan, what);
  // Every file it names is read once now: a wrong path fails here, not at the first request.
  await access.applyTo({});
  return access;
}

async function readKubeconfig(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KubeconfigError(`kubeconfig ${path}: ${code === 'ENOENT' ? 'no such file' : errorLine(err)}`);
  }
  try {
    // JSON first (kubectl reads either, and JSON is YAML): the YAML parser stays loaded for the
    // process's life, 8 MiB of code and heap.
    return JSON.parse(text) as unknown;
  } catch {
    // YAML, as kubectl writes it
  }
  try {
    return yamlParser().parse(text);
  } catch (err) {
    throw new KubeconfigError(`kubeconfig ${path}: not YAML: ${errorLine(err)}`);
  }
}

/** The plan's cluster and user, applied to each request as client-node's applyToHTTPSOptions would. */
export class PlainKubeAccess implements KubeAccess {
  readonly server: string;
  private readonly cluster: ClusterAccess;
  private readonly user: UserAccess;
  private readonly tokenFile: FileToken | undefined;

  constructor(
    plan: Extract<AccessPlan, { kind: 'own' }>,
    /** Names the kubeconfig in errors. */
    private readonly what: string,
    now: () => number = Date.now,
  ) {
    this.server = plan.cluster.server;
    this.cluster = plan.cluster;
    this.user = plan.user;
    this.tokenFile = plan.user.token?.kind === 'file' ? new FileToken(plan.user.token.path, now) : undefined;
  }

  async applyTo(options: RequestOptions): Promise<void> {
    const { cluster, user } = this;
    if (cluster.skipTlsVerify) options.rejectUnauthorized = false;
    if (cluster.tlsServerName !== undefined) options.servername = cluster.tlsServerName;
    // Files are read at each request, as client-node does: a rotated certificate is picked up.
    const [ca, cert, key] = await Promise.all([this.pem('certificate-authority', cluster.ca), this.pem('client-certificate', user.cert), this.pem('client-key', user.key)]);
    if (ca) options.ca = ca;
    if (cert) options.cert = cert;
    if (key) options.key = key;
    const token = user.token?.kind === 'inline' ? user.token.token : await this.tokenFile?.read().catch((err: unknown) => this.fail(`token file ${this.tokenFile?.path}`, err));
    // A bearer token wins over basic auth (node:http sends `auth` only without an Authorization header).
    if (token !== undefined) options.headers = { ...options.headers, Authorization: `Bearer ${token}` };
    else if (user.basic) options.auth = `${user.basic.username}:${user.basic.password}`;
    // A connection of its own per request, as client-node's fresh Agent per request gave: no pooled
    // keep-alive sockets outliving a watch.
    options.agent = false;
  }

  private async pem(field: string, source: PemSource | undefined): Promise<Buffer | undefined> {
    if (source === undefined) return undefined;
    if (source.kind === 'data') return source.data;
    return readFile(source.path).catch((err: unknown) => this.fail(`${field} ${source.path}`, err));
  }

  private fail(field: string, err: unknown): never {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KubeconfigError(`${this.what}: ${field}: ${code === 'ENOENT' ? 'no such file' : errorLine(err)}`);
  }
}

/** How long a token read from a file is used before it is read again (client-go's cached file token source). */
export const TOKEN_FILE_REREAD_MS = 60_000;

/**
 * A bearer token in a file, re-read at most once a minute: a projected service-account token is
 * rotated by the kubelet, and client-go picks up the new one within that time. A failed re-read
 * keeps the token read before (client-go does too); the first read must succeed.
 */
export class FileToken {
  private token: string | undefined;
  private readAt = 0;

  constructor(
    readonly path: string,
    private readonly now: () => number = Date.now,
  ) {}

  async read(): Promise<string> {
    const now = this.now();
    if (this.token !== undefined && now - this.readAt < TOKEN_FILE_REREAD_MS) return this.token;
    try {
      const token = (await readFile(this.path, 'utf8')).trim();
      if (token === '') throw new Error('empty');
      this.token = token;
      this.readAt = now;
    } catch (err) {
      if (this.token === undefined) throw err;
    }
    return this.token;
  }
}
