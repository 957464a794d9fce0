// Kernel parameters, read and written per network namespace (most of net.* is per namespace).
import { runCommand } from './command.js';

export async function readSysctl(key: string, opts: { readonly netns?: string } = {}): Promise<string> {
  return (await runCommand('sysctl', ['-n', key], opts)).stdout.trim();
}

export async function writeSysctl(key: string, value: string, opts: { readonly netns?: string } = {}): Promise<void> {
  await runCommand('sysctl', ['-qw', `${key}=${value}`], opts);
}
