// `wirelane wireguard-go`, the DaemonSet's wireguard container. Where the kernel has no WireGuard
// it runs wireguard-go for the agent's interface in the foreground: the tunnel then lives in a
// container of its own and outlives every restart of the agent's container, whose agent adopts the
// device (--userspace-wireguard external). Where the kernel has WireGuard it only idles: the agent
// creates a kernel device, which no process holds.
//
// It never stops or replaces a wireguard-go it did not start: while another one serves the
// interface (an agent's own child, a container not yet gone) it waits for that one to end.
import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { findLink } from '../host/links.js';
import type { Logger } from '../observability/logger.js';
import { kernelHasWireGuard } from './kernel-support.js';
import { uapiSocketAnswers, uapiSocketPath } from './uapi-socket.js';

/** What holds the interface's name right now. */
export type DeviceState =
  | { readonly kind: 'absent' }
  | { readonly kind: 'kernel' }
  /** A TUN link whose UAPI socket answers: some wireguard-go serves it. */
  | { readonly kind: 'served' }
  /** A TUN link without an answering socket: a wireguard-go starting up or going away, or not WireGuard. */
  | { readonly kind: 'unserved-tun' }
  | { readonly kind: 'foreign'; readonly linkKind: string | undefined };

export type DaemonAction =
  | { readonly kind: 'run' }
  /** Nothing to run for as long as this process lives. */
  | { readonly kind: 'idle'; readonly reason: string }
  /** Look again later. */
  | { readonly kind: 'wait'; readonly reason: string };

/** The daemon's choice; `kernel` (can the kernel create WireGuard links) matters only while the name is free. */
export function decideDaemonAction(name: string, state: DeviceState, kernel: boolean): DaemonAction {
  switch (state.kind) {
    case 'absent':
      return kernel ? { kind: 'idle', reason: `the kernel has WireGuard: the agent creates ${name} there, nothing to run` } : { kind: 'run' };
    case 'kernel':
      return { kind: 'idle', reason: `${name} is a kernel WireGuard device, nothing to run` };
    case 'served':
      return { kind: 'wait', reason: `another wireguard-go serves ${name}; waiting for it to end` };
    case 'unserved-tun':
      return { kind: 'wait', reason: `a TUN link ${name} exists but no wireguard-go answers on ${uapiSocketPath(name)}; waiting for it to go` };
    case 'foreign':
      return { kind: 'wait', reason: `a ${state.linkKind ?? 'plain'} link that is not WireGuard is named ${name}; waiting for it to go` };
  }
}

export async function observeDevice(name: string): Promise<DeviceState> {
  const link = await findLink(name);
  if (link === undefined) return { kind: 'absent' };
  if (link.kind === 'wireguard') return { kind: 'kernel' };
  if (link.kind === 'tun') return (await uapiSocketAnswers(uapiSocketPath(name))) ? { kind: 'served' } : { kind: 'unserved-tun' };
  return { kind: 'foreign', linkKind: link.kind };
}

export interface UserspaceDaemonOptions {
  readonly name: string;
  /** The wireguard-go binary. */
  readonly wireguardGo: string;
  readonly log: Logger;
  /** Aborting it stops the daemon (and the wireguard-go it runs, which removes its device). */
  readonly stop: AbortSignal;
  /** How often to look again while waiting; default 1 s. */
  readonly pollMs?: number;
}

/**
 * Runs until stopped, or until the wireguard-go it started exits; returns the exit code for the
 * container (wireguard-go's own, so a crash restarts the container and shows in its restart count).
 */
export async function runUserspaceDaemon(opts: UserspaceDaemonOptions): Promise<number> {
  let kernel: boolean | undefined;
  let said: string | undefined;
  while (!opts.stop.aborted) {
    const state = await observeDevice(opts.name);
    if (state.kind === 'absent') kernel ??= await kernelHasWireGuard();
    const action = decideDaemonAction(opts.name, state, kernel ?? false);
    if (action.kind === 'run') return runWireguardGo(opts);
    if (action.reason !== said) opts.log.info(action.reason);
    said = action.reason;
    if (action.kind === 'idle') {
      await stopped(opts.stop);
      break;
    }
    await sleep(opts.pollMs ?? 1000, undefined, { signal: opts.stop }).catch(() => undefined);
  }
  return 0;
}

function stopped(signal: AbortSignal): Promise<void> {
  return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** wireguard-go in the foreground, its output the container's; SIGTERM on stop makes it remove its device. */
async function runWireguardGo(opts: UserspaceDaemonOptions): Promise<number> {
  const child: ChildProcess = spawn(opts.wireguardGo, ['-f', opts.name], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'error', WG_PROCESS_FOREGROUND: '1' },
  });
  const exit = new Promise<number>((resolve) => {
    child.once('error', (error) => {
      opts.log.error(`${opts.wireguardGo}: ${error.message}`);
      resolve(1);
    });
    // A signal's death reads as 128 + its number, as a shell reports it.
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
  opts.log.info({ pid: child.pid }, `wireguard-go serves ${opts.name}`);
  const onStop = (): void => {
    child.kill('SIGTERM');
  };
  opts.stop.addEventListener('abort', onStop, { once: true });
  const code = await exit;
  opts.stop.removeEventListener('abort', onStop);
  if (!opts.stop.aborted) opts.log.error({ code }, `wireguard-go for ${opts.name} exited`);
  return code;
}
