// One request to the API server over plain node:http(s), with the kubeconfig's credentials and TLS
// settings (kube-access.ts): what list-watch.ts streams from, and the few
// writes the agent makes (its Node's annotations, its Leases). Not client-node's typed API: loading
// it costs ~70 MiB and most of a second, and its failures hide the Status body.
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { type RequestOptions, request as httpsRequest } from 'node:https';
import type { KubeAccess } from './kube-access.js';
import { withTimeout } from '../../host/timeouts.js';
import { isRecord } from '../objects.js';
import { ApiFailure, failureOfResponse, messageLine } from './api-failure.js';

export interface KubeRequest {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH';
  /** The API path, e.g. `/api/v1/nodes`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  /** Names this client to the API server (its audit log, and the test server's per-client tallies). */
  readonly userAgent?: string;
  /** Sent as JSON with this content type (a merge patch has its own). */
  readonly body?: { readonly value: unknown; readonly contentType: string };
}

export interface OpenedRequest {
  readonly response: IncomingMessage;
  readonly request: ClientRequest;
}

/** Sends a request and resolves at its response's headers; rejects with an ApiFailure. */
export async function openKubeRequest(access: KubeAccess, req: KubeRequest, signal: AbortSignal): Promise<OpenedRequest> {
  // Appended, not resolved: a server URL may carry a path prefix (an API proxy).
  const url = new URL(access.server + req.path);
  for (const [key, value] of Object.entries(req.query ?? {})) url.searchParams.set(key, value);
  const body = req.body && Buffer.from(JSON.stringify(req.body.value));
  const options: RequestOptions = {
    method: req.method,
    headers: {
      Accept: 'application/json',
      ...(req.userAgent !== undefined && { 'User-Agent': req.userAgent }),
      ...(body && req.body && { 'Content-Type': req.body.contentType, 'Content-Length': String(body.length) }),
    },
    signal,
  };
  await access.applyTo(options);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(url, options, (response) => resolve({ response, request }));
    request.on('error', (err) => reject(asFailure(err)));
    request.end(body);
  });
}

/**
 * One request answered with one object, bounded like every call out of the process (a TimeoutError
 * after `timeoutMs`, the request then aborted). A status other than 2xx rejects with its ApiFailure
 * (`code` is the status), so callers tell 404 and 409 from the rest.
 */
export function kubeCall(access: KubeAccess, req: KubeRequest, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
  const abort = new AbortController();
  const call = async (): Promise<Record<string, unknown>> => {
    const { response } = await openKubeRequest(access, req, abort.signal);
    const body = await readBody(response).catch((err: unknown) => Promise.reject(asFailure(err)));
    const code = response.statusCode ?? 0;
    if (code < 200 || code > 299) throw failureOfResponse(code, body);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      throw new ApiFailure('bad_response', `${what}: the body is not JSON: ${(err as Error).message}`, code);
    }
    if (!isRecord(parsed)) throw new ApiFailure('bad_response', `${what}: the body is not an object`, code);
    return parsed;
  };
  return withTimeout(call(), timeoutMs, 'kubernetes api', what).catch((err: unknown) => {
    abort.abort(); // a late answer has nobody to go to
    throw err;
  });
}

export async function readBody(response: IncomingMessage): Promise<string> {
  return (await readBodyBytes(response)).toString('utf8');
}

export async function readBodyBytes(response: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

export function asFailure(err: unknown): ApiFailure {
  if (err instanceof ApiFailure) return err;
  const code = isRecord(err) && typeof err.code === 'string' ? err.code : undefined;
  const message = err instanceof Error ? messageLine(err.message) : String(err);
  return new ApiFailure(code === 'ETIMEDOUT' ? 'timeout' : 'network', message);
}
