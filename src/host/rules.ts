// Policy routing rules as `ip -j -d rule show` reports them.
import { IpJsonObject, readIpJson, type IpOptions } from './ip.js';

export interface Rule {
  readonly family: 4 | 6;
  readonly priority: number;
  /** The rule is negated (`ip rule add not ...`). */
  readonly not: boolean;
  /** Source prefix as a CIDR; undefined for "from all". */
  readonly src: string | undefined;
  readonly dst: string | undefined;
  readonly iif: string | undefined;
  readonly oif: string | undefined;
  readonly fwmark: string | undefined;
  readonly fwmask: string | undefined;
  /** The table looked up; undefined when the action is not a lookup. */
  readonly table: string | undefined;
  /** 'lookup', or what the rule does instead: 'unreachable', 'blackhole', 'prohibit', 'goto', ... */
  readonly action: string;
  readonly protocol: string | undefined;
}

function prefixOf(o: IpJsonObject, key: string, lengthKey: string): string | undefined {
  const value = o.optionalString(key);
  if (value === undefined || value === 'all') return undefined;
  const length = o.optionalNumber(lengthKey);
  return length === undefined ? value : `${value}/${length}`;
}

export function parseRule(value: unknown, family: 4 | 6): Rule {
  const o = new IpJsonObject(value, 'ip rule entry');
  const table = o.name('table');
  return {
    family,
    priority: o.number('priority'),
    not: o.has('not'),
    src: prefixOf(o, 'src', 'srclen'),
    dst: prefixOf(o, 'dst', 'dstlen'),
    iif: o.optionalString('iif'),
    oif: o.optionalString('oif'),
    fwmark: o.optionalString('fwmark'),
    fwmask: o.optionalString('fwmask'),
    table,
    action: o.optionalString('action') ?? (table === undefined ? 'unknown' : 'lookup'),
    protocol: o.name('protocol'),
  };
}

export async function listRules(opts: IpOptions & { readonly family?: 4 | 6 } = {}): Promise<Rule[]> {
  const families: (4 | 6)[] = opts.family === undefined ? [4, 6] : [opts.family];
  const lists = await Promise.all(
    families.map(async (family) =>
      (await readIpJson([`-${family}`, '-d', 'rule', 'show'], opts)).map((r) => parseRule(r, family)),
    ),
  );
  return lists.flat();
}
