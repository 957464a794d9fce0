// Network interfaces as `ip -j -d link show` reports them.
import { IpJsonObject, readIpJson, type IpOptions } from './ip.js';

export interface Link {
  readonly index: number;
  readonly name: string;
  /** linkinfo kind: 'veth', 'bridge', 'wireguard', 'tun', ...; undefined for loopback and plain devices. */
  readonly kind: string | undefined;
  readonly flags: readonly string[];
  /** Administratively up (the UP flag), whatever the carrier says. */
  readonly up: boolean;
  readonly operState: string;
  readonly mtu: number;
  readonly mac: string | undefined;
  /** The bridge (or bond) this link is enslaved to. */
  readonly master: string | undefined;
  /** 'ether', 'loopback', 'none' (a layer-3 device: WireGuard, tun), ... */
  readonly linkType: string | undefined;
}

export function parseLink(value: unknown): Link {
  const o = new IpJsonObject(value, 'ip link entry');
  const flags = o.strings('flags');
  return {
    index: o.number('ifindex'),
    name: o.string('ifname'),
    kind: o.object('linkinfo')?.optionalString('info_kind'),
    flags,
    up: flags.includes('UP'),
    operState: o.optionalString('operstate') ?? 'UNKNOWN',
    mtu: o.number('mtu'),
    mac: o.optionalString('address'),
    master: o.optionalString('master'),
    linkType: o.optionalString('link_type'),
  };
}

export async function listLinks(opts: IpOptions = {}): Promise<Link[]> {
  return (await readIpJson(['-d', 'link', 'show'], opts)).map(parseLink);
}

/** The link named `name`, or undefined when there is none. */
export async function findLink(name: string, opts: IpOptions = {}): Promise<Link | undefined> {
  return (await listLinks(opts)).find((link) => link.name === name);
}
