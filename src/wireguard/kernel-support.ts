// Whether the kernel can create WireGuard links: the only sure answer is to create one. The
// module may be built in, loadable on demand (`ip link add` loads it) or absent.
import { runCommand } from '../host/command.js';

/** Creates and deletes a throwaway WireGuard link; true when the kernel made it. */
export async function kernelHasWireGuard(netns?: string): Promise<boolean> {
  // Unique per process: two probes at once must not see each other's link.
  const name = `wlprobe${process.pid.toString(36)}`;
  const added = await runCommand('ip', ['link', 'add', name, 'type', 'wireguard'], { netns, allowFailure: true });
  if (added.exitCode !== 0) return false;
  await runCommand('ip', ['link', 'del', name], { netns, allowFailure: true });
  return true;
}
