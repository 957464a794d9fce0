// The C layouts of bpf/include/wirelane_maps.h, wirelane_nodeport.h and wirelane_fastpath.h as data: every key and value
// type of the maps, each member with its byte offset and size, and which type each map's key and
// value is. This is the only place TypeScript states an offset: the codec (codec.ts) and the tc
// data path's keys (nodeport.ts, sock-term.ts) read theirs from here, and
// test/dataplane/ebpf-layouts.test.ts compares the table with the BTF of the compiled objects,
// member by member, so a header changed without this table fails there (Cilium's alignchecker).
// Members are listed in the header's order, padding included: hash keys compare padding too.

/** A member's place in its struct, in bytes. */
export interface Field {
  readonly offset: number;
  readonly size: number;
}

export interface Layout<F extends string = string> {
  readonly kind: 'struct' | 'union' | 'scalar';
  /** The C name: the struct or union tag, or the scalar's typedef (`__u32`). */
  readonly name: string;
  /** sizeof, in bytes. */
  readonly size: number;
  /** Every member; none for a scalar. */
  readonly fields: { readonly [K in F]: Field };
}

type Members<F extends string> = { readonly [K in F]: readonly [offset: number, size: number] };

function aggregate<F extends string>(kind: 'struct' | 'union', name: string, size: number, members: Members<F>): Layout<F> {
  const fields = {} as Record<F, Field>;
  for (const key of Object.keys(members) as F[]) {
    const [offset, bytes] = members[key];
    fields[key] = { offset, size: bytes };
  }
  return { kind, name, size, fields };
}

const struct = <F extends string>(name: string, size: number, members: Members<F>): Layout<F> => aggregate('struct', name, size, members);
const union = <F extends string>(name: string, size: number, members: Members<F>): Layout<F> => aggregate('union', name, size, members);
const scalar = (name: string, size: number): Layout<never> => ({ kind: 'scalar', name, size, fields: {} });

const U32 = scalar('__u32', 4);
const U64 = scalar('__u64', 8);
const INT = scalar('int', 4);

// ---- wirelane_maps.h ------------------------------------------------------------------------

export const SERVICE_KEY = struct('wl_service_key', 24, {
  addr: [0, 16],
  port: [16, 2],
  protocol: [18, 1],
  family: [19, 1],
  scope: [20, 1],
  pad: [21, 3],
});

export const SERVICE_VALUE = struct('wl_service_value', 20, {
  first_slot: [0, 4],
  service_id: [4, 4],
  count: [8, 2],
  flags: [10, 2],
  affinity_timeout: [12, 4],
  capacity: [16, 2],
  pad: [18, 2],
});

export const BACKEND = struct('wl_backend', 20, {
  addr: [0, 16],
  port: [16, 2],
  family: [18, 1],
  flags: [19, 1],
});

export const NODE_ADDR_KEY = struct('wl_node_addr_key', 20, {
  addr: [0, 16],
  family: [16, 1],
  pad: [17, 3],
});

const NODE_ADDR_VALUE = struct('wl_node_addr_value', 4, {
  flags: [0, 4],
});

export const AFFINITY_CLIENT = union('wl_affinity_client', 16, {
  netns_cookie: [0, 8],
  socket_cookie: [0, 8],
  addr: [0, 16],
});

export const AFFINITY_KEY = struct('wl_affinity_key', 24, {
  client: [0, 16],
  service_id: [16, 4],
  kind: [20, 1],
  family: [21, 1],
  pad: [22, 2],
});

const AFFINITY_VALUE = struct('wl_affinity_value', 16, {
  backend_id: [0, 4],
  slot: [4, 2],
  pad: [6, 2],
  last_used_ns: [8, 8],
});

const SOCK_REV_KEY = struct('wl_sock_rev_key', 32, {
  cookie: [0, 8],
  addr: [8, 16],
  port: [24, 2],
  family: [26, 1],
  pad: [27, 5],
});

const SOCK_REV_VALUE = struct('wl_sock_rev_value', 24, {
  addr: [0, 16],
  port: [16, 2],
  family: [18, 1],
  pad: [19, 1],
  service_id: [20, 4],
});

const SOCK_OWNED_ENTRY = struct('wl_sock_owned_entry', 24, {
  addr: [0, 16],
  port: [16, 2],
  family: [18, 1],
  pad: [19, 1],
  service_id: [20, 4],
});

const SOCK_OWNED = struct('wl_sock_owned', 8 + 8 * SOCK_OWNED_ENTRY.size, {
  next: [0, 4],
  pad: [4, 4],
  entries: [8, 8 * SOCK_OWNED_ENTRY.size],
});

export const SOCK_TERM_KEY = struct('wl_sock_term_key', 36, {
  frontend: [0, 16],
  backend: [16, 16],
  port: [32, 2],
  family: [34, 1],
  pad: [35, 1],
});

// ---- wirelane_nodeport.h --------------------------------------------------------------------

const NP_CT_KEY = struct('wl_np_ct_key', 40, {
  saddr: [0, 16],
  daddr: [16, 16],
  sport: [32, 2],
  dport: [34, 2],
  protocol: [36, 1],
  family: [37, 1],
  direction: [38, 1],
  pad: [39, 1],
});

const NP_CT_VALUE = struct('wl_np_ct_value', 52, {
  saddr: [0, 16],
  daddr: [16, 16],
  sport: [32, 2],
  dport: [34, 2],
  backend_id: [36, 4],
  service_id: [40, 4],
  slot: [44, 2],
  flags: [46, 1],
  pad: [47, 1],
  last_seen: [48, 4],
});

const NP_PENDING_VALUE = struct('wl_np_pending_value', 56, {
  flow: [0, NP_CT_VALUE.size],
  handshake_ack: [52, 4],
});

export const NP_RANGE_KEY = struct('wl_np_range_key', 44, {
  prefixlen: [0, 4],
  addr: [4, 16],
  port: [20, 2],
  protocol: [22, 1],
  family: [23, 1],
  pad: [24, 1],
  source: [25, 16],
  pad2: [41, 3],
});

const NP_RANGE_VALUE = struct('wl_np_range_value', 4, {
  flags: [0, 4],
});

export const NP_SNAT_VALUE = struct('wl_np_snat_value', 16, {
  addr: [0, 16],
});

// ---- wirelane_fastpath.h --------------------------------------------------------------------

export const FP_CIDR_KEY = struct('wl_fp_cidr_key', 24, {
  prefixlen: [0, 4],
  family: [4, 1],
  pad: [5, 3],
  addr: [8, 16],
});

const FP_CIDR_VALUE = struct('wl_fp_cidr_value', 4, {
  flags: [0, 4],
});

const FP_DEV_VALUE = struct('wl_fp_dev_value', 4, {
  kind: [0, 4],
});

const FP_PORT_KEY = struct('wl_fp_port_key', 8, {
  mac: [0, 6],
  pad: [6, 2],
});

const FP_PORT_VALUE = struct('wl_fp_port_value', 8, {
  ifindex: [0, 4],
  pad: [4, 4],
});

/** Every struct and union above, for the check against BTF. */
export const AGGREGATES: readonly Layout[] = [
  SERVICE_KEY,
  SERVICE_VALUE,
  BACKEND,
  NODE_ADDR_KEY,
  NODE_ADDR_VALUE,
  AFFINITY_CLIENT,
  AFFINITY_KEY,
  AFFINITY_VALUE,
  SOCK_REV_KEY,
  SOCK_REV_VALUE,
  SOCK_OWNED_ENTRY,
  SOCK_OWNED,
  SOCK_TERM_KEY,
  NP_CT_KEY,
  NP_CT_VALUE,
  NP_PENDING_VALUE,
  NP_RANGE_KEY,
  NP_RANGE_VALUE,
  NP_SNAT_VALUE,
  FP_CIDR_KEY,
  FP_CIDR_VALUE,
  FP_DEV_VALUE,
  FP_PORT_KEY,
  FP_PORT_VALUE,
];

export interface MapLayout {
  readonly key: Layout;
  readonly value: Layout;
}

/** Each map's key and value, by map name (the header's WL_MAP_*), for every map of bpf/. */
export const MAPS = {
  wl_services: { key: SERVICE_KEY, value: SERVICE_VALUE },
  wl_slots: { key: U32, value: U32 },
  wl_backends: { key: U32, value: BACKEND },
  wl_node_addrs: { key: NODE_ADDR_KEY, value: NODE_ADDR_VALUE },
  wl_affinity: { key: AFFINITY_KEY, value: AFFINITY_VALUE },
  wl_sock_rev: { key: SOCK_REV_KEY, value: SOCK_REV_VALUE },
  wl_sock_owned: { key: INT, value: SOCK_OWNED },
  wl_sock_stats: { key: U32, value: U64 },
  wl_sock_term: { key: SOCK_TERM_KEY, value: U32 },
  wl_np_ct: { key: NP_CT_KEY, value: NP_CT_VALUE },
  wl_np_pending: { key: NP_CT_KEY, value: NP_PENDING_VALUE },
  wl_np_affinity: { key: AFFINITY_KEY, value: AFFINITY_VALUE },
  wl_np_ranges: { key: NP_RANGE_KEY, value: NP_RANGE_VALUE },
  wl_np_snat: { key: U32, value: NP_SNAT_VALUE },
  wl_np_stats: { key: U32, value: U64 },
  wl_fp_cidrs: { key: FP_CIDR_KEY, value: FP_CIDR_VALUE },
  wl_fp_devs: { key: U32, value: FP_DEV_VALUE },
  wl_fp_ports: { key: FP_PORT_KEY, value: FP_PORT_VALUE },
  wl_fp_stats: { key: U32, value: U64 },
} as const satisfies Readonly<Record<string, MapLayout>>;

/** A 32-bit word of a layout: the codec's writers fill keys and values word by word. */
export interface WordField {
  /** Index of the word holding the field. */
  readonly word: number;
  /** Bit position of the field's first byte in that word, read on a little-endian host. */
  readonly shift: number;
}

/** Where a field of at most 4 bytes is among the layout's words; throws when it straddles two. */
export function wordOf<F extends string>(layout: Layout<F>, field: F): WordField {
  const f = fieldOf(layout, field);
  const word = f.offset >>> 2;
  if (f.size > 4 || (f.offset + f.size - 1) >>> 2 !== word) throw new Error(`${layout.name}.${field} (offset ${f.offset}, ${f.size} bytes) is not within one 32-bit word`);
  return { word, shift: (f.offset & 3) * 8 };
}

/** The first word of a word-aligned field (an address, a u32, a u64); throws when it is not aligned. */
export function alignedWord<F extends string>(layout: Layout<F>, field: F): number {
  const f = fieldOf(layout, field);
  if (f.offset % 4 !== 0 || f.size % 4 !== 0) throw new Error(`${layout.name}.${field} (offset ${f.offset}, ${f.size} bytes) is not whole 32-bit words`);
  return f.offset >>> 2;
}

/**
 * The one word `fields` share, which a writer stores whole: throws unless they are all in it and
 * every other member overlapping it is padding (stored as zero).
 */
export function sharedWord<F extends string>(layout: Layout<F>, first: F, ...rest: F[]): number {
  const fields = [first, ...rest];
  const word = wordOf(layout, first).word;
  for (const name of fields) {
    if (wordOf(layout, name).word !== word) throw new Error(`${layout.name}: ${fields.join(', ')} are not in one 32-bit word`);
  }
  for (const [name, f] of Object.entries<Field>(layout.fields)) {
    if ((fields as string[]).includes(name) || name.startsWith('pad')) continue;
    if (f.offset < (word + 1) * 4 && f.offset + f.size > word * 4) {
      throw new Error(`${layout.name}: ${name} shares a 32-bit word with ${fields.join(', ')}, and a writer of those would zero it`);
    }
  }
  return word;
}

/** A member by name; throws when the layout has none. */
export function fieldOf<F extends string>(layout: Layout<F>, name: F): Field {
  const f = (layout.fields as Readonly<Record<string, Field | undefined>>)[name];
  if (f === undefined) throw new Error(`${layout.name} has no member ${name}`);
  return f;
}
