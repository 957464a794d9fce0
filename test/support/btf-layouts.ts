// The struct layouts and map types a compiled BPF object declares, read from its BTF
// (`bpftool -j btf dump file X format raw`), and how they differ from src/dataplane/ebpf/layouts.ts:
// the check behind test/dataplane/ebpf-layouts.test.ts. Reading is separate from comparing so the
// comparison can be tested on altered BTF.
import { execFileSync } from 'node:child_process';
import type { Layout, MapLayout } from '../../src/dataplane/ebpf/layouts.js';

/** One BTF type as bpftool's JSON prints it (the fields this check reads). */
export interface BtfType {
  readonly id: number;
  readonly kind: string;
  readonly name: string;
  readonly size?: number;
  readonly type_id?: number;
  readonly nr_elems?: number;
  readonly members?: ReadonlyArray<{ readonly name: string; readonly type_id: number; readonly bits_offset: number; readonly bitfield_size?: number }>;
  readonly vars?: ReadonlyArray<{ readonly type_id: number }>;
}

export function readBtf(objectPath: string): BtfType[] {
  const json = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', objectPath, 'format', 'raw'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return (JSON.parse(json) as { types: BtfType[] }).types;
}

/** A struct, union or scalar as found in BTF, in the table's terms. */
interface Found {
  readonly kind: Layout['kind'];
  readonly name: string;
  readonly size: number;
  readonly fields: ReadonlyArray<{ readonly name: string; readonly offset: number; readonly size: number; readonly bitfield: boolean }>;
}

class BtfIndex {
  readonly #byId: Map<number, BtfType>;

  constructor(readonly types: readonly BtfType[]) {
    this.#byId = new Map(types.map((t) => [t.id, t]));
  }

  get(id: number): BtfType {
    const type = this.#byId.get(id);
    if (type === undefined) throw new Error(`BTF type ${id} is missing`);
    return type;
  }

  sizeOf(id: number): number {
    const t = this.get(id);
    switch (t.kind) {
      case 'TYPEDEF':
      case 'CONST':
      case 'VOLATILE':
      case 'RESTRICT':
        return this.sizeOf(t.type_id ?? 0);
      case 'ARRAY':
        return (t.nr_elems ?? 0) * this.sizeOf(t.type_id ?? 0);
      case 'PTR':
        return 8;
      default:
        return t.size ?? 0;
    }
  }

  /** A struct or union by its own type; a scalar by its first typedef name (`__u32`), else the base type's. */
  describe(id: number): Found {
    const t = this.get(id);
    if (t.kind === 'STRUCT' || t.kind === 'UNION') {
      const fields = (t.members ?? []).map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: this.sizeOf(m.type_id), bitfield: (m.bitfield_size ?? 0) > 0 || m.bits_offset % 8 !== 0 }));
      return { kind: t.kind === 'STRUCT' ? 'struct' : 'union', name: t.name, size: t.size ?? 0, fields };
    }
    return { kind: 'scalar', name: t.name, size: this.sizeOf(id), fields: [] };
  }

  /** The map definitions of the .maps section: map name → the type ids of its key and value. */
  maps(): Map<string, { key: number; value: number }> {
    const out = new Map<string, { key: number; value: number }>();
    for (const section of this.types.filter((t) => t.kind === 'DATASEC' && t.name === '.maps')) {
      for (const v of section.vars ?? []) {
        const variable = this.get(v.type_id);
        const definition = this.get(variable.type_id ?? 0);
        // __type(key, T) is a member `key` of type T *.
        const pointee = (member: string): number => this.get(definition.members?.find((m) => m.name === member)?.type_id ?? 0).type_id ?? 0;
        out.set(variable.name, { key: pointee('key'), value: pointee('value') });
      }
    }
    return out;
  }
}

/** Struct and union names the check covers: the header's own (struct frontend in a program is not a map layout). */
const OURS = /^wl_/;

/** The differences between `btf` (of the object called `object`) and the table, one line each; none when they agree. */
export function layoutDifferences(object: string, btf: readonly BtfType[], aggregates: readonly Layout[], maps: Readonly<Record<string, MapLayout>>): string[] {
  const index = new BtfIndex(btf);
  const byName = new Map(aggregates.map((l) => [l.name, l]));
  const problems: string[] = [];
  for (const type of btf) {
    if ((type.kind !== 'STRUCT' && type.kind !== 'UNION') || !OURS.test(type.name)) continue;
    const layout = byName.get(type.name);
    if (layout === undefined) problems.push(`${object}: ${type.kind.toLowerCase()} ${type.name} is not in layouts.ts`);
    else problems.push(...differencesOf(object, index.describe(type.id), layout));
  }
  for (const [name, types] of index.maps()) {
    const layout = maps[name];
    if (layout === undefined) {
      problems.push(`${object}: map ${name} is not in layouts.ts MAPS`);
      continue;
    }
    for (const part of ['key', 'value'] as const) {
      const found = index.describe(types[part]);
      const want = layout[part];
      if (found.kind !== want.kind || found.name !== want.name || found.size !== want.size) {
        problems.push(`${object}: map ${name} ${part} is ${found.kind} ${found.name} (${bytes(found.size)}), layouts.ts says ${want.kind} ${want.name} (${bytes(want.size)})`);
      }
    }
  }
  return problems;
}

function differencesOf(object: string, found: Found, layout: Layout): string[] {
  const where = `${object}: ${found.kind} ${found.name}`;
  const problems: string[] = [];
  if (found.kind !== layout.kind) problems.push(`${where} is a ${layout.kind} in layouts.ts`);
  if (found.size !== layout.size) problems.push(`${where} is ${bytes(found.size)}, ${layout.size} in layouts.ts`);
  const table = new Map(Object.entries<{ offset: number; size: number }>(layout.fields));
  for (const f of found.fields) {
    const want = table.get(f.name);
    if (f.bitfield) problems.push(`${where}.${f.name} is a bit field, which layouts.ts cannot describe`);
    else if (want === undefined) problems.push(`${where}.${f.name} (offset ${f.offset}, ${bytes(f.size)}) is not in layouts.ts`);
    else if (want.offset !== f.offset || want.size !== f.size) problems.push(`${where}.${f.name} is at offset ${f.offset}, ${bytes(f.size)}; layouts.ts says offset ${want.offset}, ${bytes(want.size)}`);
    table.delete(f.name);
  }
  for (const name of table.keys()) problems.push(`${where} has no member ${name}, which layouts.ts lists`);
  return problems;
}

function bytes(n: number): string {
  return n === 1 ? '1 byte' : `${n} bytes`;
}

/** Struct and union names of `btf` the check covers. */
export function aggregateNames(btf: readonly BtfType[]): string[] {
  return btf.filter((t) => (t.kind === 'STRUCT' || t.kind === 'UNION') && OURS.test(t.name)).map((t) => t.name);
}

/** Map names `btf` defines. */
export function mapNames(btf: readonly BtfType[]): string[] {
  return [...new BtfIndex(btf).maps().keys()];
}
