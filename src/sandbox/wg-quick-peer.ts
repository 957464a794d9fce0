// A Peer host set up as its user would: the text `wirelane showconf peer NAME` prints, completed
// with the host's own [Interface] settings, brought up by the real wg-quick (wireguard-go as its
// userspace implementation: this kernel has no WireGuard module). Used by the demo and the tests.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WireGuardKey } from '../model/key.js';
import { uapiSocketPath } from '../wireguard/uapi-socket.js';
import type { Sandbox, SandboxHost } from './sandbox.js';

/** What only the Peer's host knows: showconf never prints a private key. */
export interface PeerInterfaceSettings {
  readonly privateKey: WireGuardKey;
  /** `ip/bits`: the Peer's allowed IPs, which wg-quick puts on the interface. */
  readonly addresses: readonly string[];
  /** A fixed UDP port (wg-quick's ListenPort); absent: one the kernel picks. */
  readonly listenPort?: number;
}

/** Adds the host's own settings to showconf's [Interface] section (the first section it prints). */
export function completePeerConfig(shown: string, own: PeerInterfaceSettings): string {
  const head = '[Interface]\n';
  if (!shown.startsWith(head)) throw new Error(`showconf peer: expected an [Interface] section first, got "${shown.split('\n')[0] ?? ''}"`);
  const port = own.listenPort === undefined ? '' : `ListenPort = ${own.listenPort}\n`;
  return `${head}PrivateKey = ${own.privateKey}\nAddress = ${own.addresses.join(', ')}\n${port}${shown.slice(head.length)}`;
}

export class WgQuickPeer {
  private constructor(
    private readonly sandbox: Sandbox,
    readonly host: SandboxHost,
    /** wg-quick names the device after its file; wireguard-go's socket directory is shared by all namespaces. */
    readonly device: string,
    private readonly file: string,
  ) {}

  /** Writes `config` (0600: it holds the private key) to `dir` and runs `wg-quick up` on `host`. */
  static async up(sandbox: Sandbox, host: SandboxHost, device: string, config: string, dir: string): Promise<WgQuickPeer> {
    const file = join(dir, `${device}.conf`);
    await writeFile(file, config, { mode: 0o600 });
    const peer = new WgQuickPeer(sandbox, host, device, file);
    try {
      await sandbox.exec(host, 'wg-quick', ['up', file], { env: { WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' } });
    } catch (err) {
      await peer.down();
      throw err;
    }
    return peer;
  }

  /** The routes wg-quick made through the device, as `ip route` prints them. */
  async routes(): Promise<string[]> {
    const r = await this.sandbox.exec(this.host, 'ip', ['route', 'show', 'dev', this.device]);
    return r.stdout.split('\n').filter((l) => l !== '');
  }

  /** `wg-quick down` (it ends wireguard-go, which removes its socket); a killed one's socket goes too. */
  async down(): Promise<void> {
    await this.sandbox.exec(this.host, 'wg-quick', ['down', this.file], { allowFailure: true });
    await rm(this.file, { force: true });
    await rm(uapiSocketPath(this.device), { force: true });
  }
}
