// Interface addresses as `ip -j addr show` reports them, one entry per address.
import { IpJsonObject, readIpJson, type IpOptions } from './ip.js';

export interface InterfaceAddress {
  readonly ifname: string;
  readonly family: 4 | 6;
  readonly address: string;
  readonly prefixLength: number;
  /** `address/prefixLength`, as `ip addr add` takes it. */
  readonly cidr: string;
  /** 'global', 'link', 'host', ... */
  readonly scope: string;
}

export function parseAddresses(value: unknown): InterfaceAddress[] {
  const link = new IpJsonObject(value, 'ip addr entry');
  const ifname = link.string('ifname');
  return link.objects('addr_info').map((info) => {
    const familyName = info.string('family');
    if (familyName !== 'inet' && familyName !== 'inet6') {
      throw new TypeError(`ip addr entry ${ifname}: family "${familyName}" is neither inet nor inet6`);
    }
    const address = info.string('local');
    const prefixLength = info.number('prefixlen');
    return {
      ifname,
      family: familyName === 'inet' ? 4 : 6,
      address,
      prefixLength,
      cidr: `${address}/${prefixLength}`,
      scope: info.optionalString('scope') ?? 'global',
    };
  });
}

export async function listAddresses(opts: IpOptions & { readonly ifname?: string } = {}): Promise<InterfaceAddress[]> {
  const args = opts.ifname === undefined ? ['addr', 'show'] : ['addr', 'show', 'dev', opts.ifname];
  return (await readIpJson(args, opts)).flatMap(parseAddresses);
}
