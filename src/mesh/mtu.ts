// The MTU of the mesh: what the WireGuard device gets, and what pods get in CNI mode (a pod packet
// larger than this would be fragmented or dropped on its way through the tunnel).

/** WireGuard's overhead over an IPv6 underlay (40 IPv6 + 8 UDP + 32 WireGuard). */
export const WIREGUARD_OVERHEAD = 80;

/** IPv6's minimum MTU, also --mtu's lowest value: `auto` never goes below it, whatever the underlay says. */
export const MIN_MTU = 1280;

/** `--mtu auto` subtracts WireGuard's overhead from the underlay device's MTU; a number is taken as given. */
export function meshMtuOf(configured: number | 'auto', underlayMtu: number): number {
  return configured === 'auto' ? Math.max(MIN_MTU, underlayMtu - WIREGUARD_OVERHEAD) : configured;
}
