// How long the agent waits on the world outside its process: external commands and DNS look-ups.
// Every one is bounded, so a hung `wg` or resolver costs one reconcile step its timeout, never the
// loop. The agent sets the command default (--command-timeout) and a listener that counts timeouts
// (wirelane_command_timeouts_total) once at start: process-wide, because commands are run from deep
// inside every dataplane, which should not each carry the setting.

/** For commands that are normally done in milliseconds (ip, wg, sysctl, conntrack). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

/**
 * Two of resolv.conf's default 5 s tries. A name that takes longer is treated as not resolving this
 * round: its peer keeps the endpoint the device has (see wireguard/resolve.ts).
 */
export const DNS_LOOKUP_TIMEOUT_MS = 10_000;

export type TimeoutListener = (operation: string) => void;

let commandTimeout = DEFAULT_COMMAND_TIMEOUT_MS;
let listener: TimeoutListener | undefined;

export interface TimeoutSettings {
  /** The timeout of a command whose caller gives none. */
  readonly commandTimeoutMs?: number;
  /** Told the operation (a command's name, or `dns`) each time one times out. */
  readonly onTimeout?: TimeoutListener;
}

export function configureTimeouts(settings: TimeoutSettings): void {
  if (settings.commandTimeoutMs !== undefined) {
    if (!(settings.commandTimeoutMs > 0)) throw new RangeError(`command timeout ${settings.commandTimeoutMs} ms is not positive`);
    commandTimeout = settings.commandTimeoutMs;
  }
  if (settings.onTimeout !== undefined) listener = settings.onTimeout;
}

export function defaultCommandTimeoutMs(): number {
  return commandTimeout;
}

export function reportTimeout(operation: string): void {
  try {
    listener?.(operation);
  } catch {
    // Counting must never turn a timeout into a different error.
  }
}

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * Settles with `work`, or rejects with a TimeoutError once `ms` have passed. The work itself is not
 * cancelled (a getaddrinfo cannot be): its late result is dropped.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, operation: string, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reportTimeout(operation);
      reject(new TimeoutError(`${what} timed out after ${ms} ms`));
    }, ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
