// A WireGuard device configuration: what `wg setconf` takes and `wg showconf` prints.
import type { Endpoint } from '../model/endpoint.js';
import type { Cidr } from '../model/ip.js';
import type { WireGuardKey } from '../model/key.js';

export interface WireGuardInterface {
  readonly privateKey?: WireGuardKey;
  readonly listenPort?: number;
  readonly fwMark?: number;
}

export interface WireGuardPeer {
  readonly publicKey: WireGuardKey;
  readonly presharedKey?: WireGuardKey;
  readonly endpoint?: Endpoint;
  readonly allowedIPs: readonly Cidr[];
  /** Seconds; 0 or undefined disables keepalive. */
  readonly persistentKeepalive?: number;
}

export interface WireGuardConfig {
  readonly interface: WireGuardInterface;
  readonly peers: readonly WireGuardPeer[];
}
