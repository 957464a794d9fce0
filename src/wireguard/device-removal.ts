// Removing a WireGuard interface that no live agent supervises (`wirelane cleanup`, an agent's
// --clean-up after it let go of the device): the kernel module's link, or wireguard-go's TUN link
// and its UAPI socket. Only on positive evidence that the link is WireGuard: a plain TUN device of
// the same name without a wireguard-go behind it is someone else's.
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { runIp } from '../host/ip.js';
import { findLink } from '../host/links.js';
import { probeUapiSocket, uapiSocketPath } from './uapi-socket.js';

/** How long wireguard-go gets to notice its TUN device is gone and remove its socket. */
const EXIT_WAIT_MS = 5000;

/** Deletes the interface `name` if it is WireGuard, and a wireguard-go socket nobody serves; says what went. */
export async function removeWireGuardDevice(name: string, opts: { readonly netns?: string } = {}): Promise<string[]> {
  const removed: string[] = [];
  const socketPath = uapiSocketPath(name);
  const link = await findLink(name, opts);
  const wireguardGo = link?.kind === 'tun' && (await socketState(socketPath)) === 'served';
  if (link?.kind === 'wireguard' || wireguardGo) {
    // wireguard-go exits by itself once its TUN device is deleted, removing its socket.
    await runIp(['link', 'del', name], opts);
    removed.push(`WireGuard device ${name} (${wireguardGo ? 'wireguard-go' : 'kernel'})`);
  }
  const deadline = Date.now() + (wireguardGo ? EXIT_WAIT_MS : 0);
  let state = await socketState(socketPath);
  while (state === 'served') {
    // A wireguard-go serving this name for a link elsewhere (another namespace) is not ours to stop.
    if (!wireguardGo) return removed;
    if (Date.now() > deadline) throw new Error(`wireguard-go still serves ${socketPath} ${EXIT_WAIT_MS} ms after its device was deleted`);
    await sleep(50);
    state = await socketState(socketPath);
  }
  if (state === 'stale') {
    await rm(socketPath, { force: true });
    // Once its device is deleted, wireguard-go may be between closing its socket and removing it.
    if (!wireguardGo) removed.push(`stale wireguard-go socket ${socketPath}`);
  }
  return removed;
}

/** Anything short of proof that nobody serves the socket, a slow answer included, counts as served. */
async function socketState(path: string): Promise<'served' | 'stale' | 'absent'> {
  const state = await probeUapiSocket(path);
  return state === 'unknown' ? 'served' : state;
}
