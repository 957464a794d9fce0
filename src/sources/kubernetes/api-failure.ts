// Why a request to the API server failed, in a few kinds a reflector acts on and a metric can
// count (the `reason` label stays small and fixed).
import { firstLine } from '../../observability/first-line.js';
import { isRecord } from '../objects.js';

export type FailureReason =
  | 'timeout'
  | 'network'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'expired'
  | 'resource_version_too_large'
  | 'throttled'
  | 'server_error'
  | 'client_error'
  | 'bad_response';

export class ApiFailure extends Error {
  override readonly name = 'ApiFailure';
  constructor(
    readonly reason: FailureReason,
    message: string,
    /** The HTTP status (or the Status code inside a watch stream); absent for network failures. */
    readonly code?: number,
  ) {
    super(message);
  }
}

/**
 * A failed answer from its HTTP status and body (a Kubernetes Status when the server wrote one).
 * A 504 whose cause is ResourceVersionTooLarge is the watch cache saying it has not caught up with
 * the resourceVersion asked for (an HA peer handed it out, or etcd was restored).
 */
export function failureOfResponse(code: number, body: string): ApiFailure {
  const status = parseStatus(body);
  const message = `${code}${status?.reason ? ` ${status.reason}` : ''}: ${messageLine(status?.message ?? body) || 'no message'}`;
  return new ApiFailure(reasonOf(code, status), message, code);
}

/** A Status object delivered as a watch ERROR event. */
export function failureOfWatchError(object: unknown): ApiFailure {
  const status = isRecord(object) ? statusFields(object) : undefined;
  const code = status?.code ?? 500;
  const message = `watch ERROR ${code}${status?.reason ? ` ${status.reason}` : ''}: ${messageLine(status?.message ?? '') || 'no message'}`;
  return new ApiFailure(reasonOf(code, status), message, code);
}

interface StatusFields {
  readonly code?: number;
  readonly reason?: string;
  readonly message?: string;
  readonly causes: readonly string[];
}

function reasonOf(code: number, status: StatusFields | undefined): FailureReason {
  if (code === 401) return 'unauthorized';
  if (code === 403) return 'forbidden';
  if (code === 404) return 'not_found';
  if (code === 410) return 'expired';
  if (code === 429) return 'throttled';
  if (code === 504 && status?.causes.includes('ResourceVersionTooLarge')) return 'resource_version_too_large';
  if (code >= 500) return 'server_error';
  return 'client_error';
}

function parseStatus(body: string): StatusFields | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return isRecord(parsed) && parsed.kind === 'Status' ? statusFields(parsed) : undefined;
  } catch {
    return undefined;
  }
}

function statusFields(object: Record<string, unknown>): StatusFields {
  const details = isRecord(object.details) ? object.details : {};
  const causes = Array.isArray(details.causes) ? details.causes : [];
  return {
    ...(typeof object.code === 'number' ? { code: object.code } : {}),
    ...(typeof object.reason === 'string' ? { reason: object.reason } : {}),
    ...(typeof object.message === 'string' ? { message: object.message } : {}),
    causes: causes.flatMap((c) => (isRecord(c) && typeof c.reason === 'string' ? [c.reason] : [])),
  };
}

/** An API server's message as one line, however long the body it came from (an HTML error page). */
export function messageLine(text: string): string {
  return firstLine(text).slice(0, 300);
}
