// What wl_services, wl_slots and wl_backends hold, mirrored in memory, and the changes that take
// them to a new set of frontends (only the frontends that differ). wl_slots and wl_backends are
// written in place through TableMemory (the agent's mapping of the kernel's arrays; plain arrays in
// tests); wl_services entries land in batches the proxy sends to the kernel. The order keeps
// readers safe (bpf/include/wirelane_maps.h): plan() writes backends, and slots no entry makes
// visible yet or live backends over live ones; the proxy writes the entries; finish() clears what
// the entries no longer name. No I/O here.
import { formatIp } from '../../model/ip.js';
import { BACKENDS_FULL, BackendPool } from './backend-pool.js';
import { BACKEND_STRIDE, EntryBatch, MAP_LAYOUTS, SLOT_STRIDE, readServiceValue, serviceValueWords } from './codec.js';
import { type DesiredFrontend, GROUPS, frontendIdOf, keyWordsOfId } from './frontends.js';
import { SlotRanges, capacityFor } from './slot-ranges.js';

/** The arrays the table writes in place. */
export interface TableMemory {
  /** wl_slots: the backend id in slot index i at i × SLOT_STRIDE. */
  readonly slots: Uint32Array;
  /** wl_backends: the value words of id i at i × BACKEND_STRIDE. */
  readonly backends: Uint32Array;
}

/** The maps that can be full: what a frontend that does not fit waits for. */
export type FullTable = 'services' | 'backends' | 'slots';

/** A frontend the maps had no room for in the last plan. */
export interface UnfitFrontend {
  readonly portKey: string;
  /** As an operator reads it: "10.96.0.1 port 80 (internal)". */
  readonly frontend: string;
  readonly table: FullTable;
  /** An existing frontend whose new backends did not fit: it keeps the ones it had. Otherwise it is not programmed. */
  readonly kept: boolean;
}

/** Zeroed arrays shaped like the mapped ones, for `slots` slot indices and `backends` ids (tests, bench). */
export function plainMemory(slots: number, backends: number): TableMemory {
  return { slots: new Uint32Array(slots * SLOT_STRIDE), backends: new Uint32Array(backends * BACKEND_STRIDE) };
}

/** A frontend as programmed. */
interface Frontend {
  /** The key, as frontendIdOf() gives it. */
  readonly id: string;
  serviceId: number;
  count: number;
  flags: number;
  affinityTimeout: number;
  /** Its wl_slots range: slot i at index first + i - 1. */
  first: number;
  capacity: number;
  /** The servicePortKey that claimed it; undefined for one adopted from the maps and not yet claimed. */
  owner: string | undefined;
  /** The service port and group (frontends.GROUPS) whose service id it carries; undefined while adopted and unclaimed. */
  groupPort: string | undefined;
  group: number;
}

/** One change's writes, besides the in-place stores plan() made. */
export class MapWrites {
  /** Service entries, new or changed: after plan(), before finish(). */
  readonly heads = new EntryBatch(MAP_LAYOUTS.wl_services.key, MAP_LAYOUTS.wl_services.value);
  /** Service entries of frontends that go, with the heads. */
  readonly headDeletes = new EntryBatch(MAP_LAYOUTS.wl_services.key, 0);
  /** Slot and backend elements stored in place, by plan() and finish(). */
  stores = 0;
  /** For finish(): wl_slots index ranges [start, end) the entries no longer name, as pairs. */
  readonly clears: number[] = [];
  /** For finish(): backends that may be named by nothing once the entries are written. */
  readonly orphans = new Set<number>();

  get total(): number {
    return this.heads.count + this.headDeletes.count + this.stores;
  }

  clear(): void {
    this.heads.clear();
    this.headDeletes.clear();
    this.stores = 0;
    this.clears.length = 0;
    this.orphans.clear();
  }
}

/** What the table keeps per service port. */
interface PortState {
  /** The frontends it claimed; undefined while a change re-plans it, and once it is gone. */
  owned: string[] | undefined;
  /** Per group (frontends.GROUPS): the service id its frontends carry (0: none), and how many carry it. */
  readonly ids: number[];
  readonly carriers: number[];
}

/** Frontends created in a change, and what #fill() gives them. */
interface Fresh {
  readonly frontends: Frontend[];
  readonly desired: DesiredFrontend[];
}

/** One service port's frontends after a change; undefined when the port is gone. */
export interface PortChange {
  readonly portKey: string;
  readonly frontends: readonly DesiredFrontend[] | undefined;
}

/** The most slots a frontend can have (count is 16 bits). */
export const MAX_BACKENDS = 0xffff;

/** A zero per group: a literal, cheaper than new Array(GROUPS).fill(0) 10,000 times. */
const perGroup = (): number[] => [0, 0, 0, 0, 0, 0];
if (perGroup().length !== GROUPS) throw new Error('service-table: perGroup() must have GROUPS entries');

const KEY_WORDS = MAP_LAYOUTS.wl_services.key / 4;
const VALUE_WORDS = MAP_LAYOUTS.wl_services.value / 4;

export class ServiceTable {
  readonly #frontends = new Map<string, Frontend>();
  readonly #ports = new Map<string, PortState>();
  readonly #slots: Uint32Array;
  readonly #backends: BackendPool;
  #ranges: SlotRanges;
  /** 1 for a service id in use (a byte per id: cheaper than a Set at 10,000s). */
  #serviceIdsUsed = new Uint8Array(1024);
  #nextServiceId = 1;
  readonly #freeServiceIds: number[] = [];
  /** Adopted backends no slot named: released by the first change. */
  #unnamed: number[] = [];
  /** Scratch for a frontend's old slots (index 0 unused). */
  readonly #old: number[] = [0];
  /** Scratch for a frontend's new backend ids (a typed array: `length = 0` on an array would free its store). */
  readonly #ids = new Uint32Array(MAX_BACKENDS);

  /** wl_services' max_entries. */
  readonly #servicesCapacity: number;
  /** The mark of the last #idsOf(), for #dropIds(). */
  #idsMark = 0;

  /** Frontends a port could not claim because another port holds them (last plan). */
  conflicts: Array<{ portKey: string; owner: string; frontend: string }> = [];
  /** Frontends the maps had no room for (last plan). */
  unfit: UnfitFrontend[] = [];

  /** `servicesCapacity`: the entries wl_services holds (unbounded for plain arrays in tests). */
  constructor(memory: TableMemory, servicesCapacity = Number.POSITIVE_INFINITY) {
    this.#slots = memory.slots;
    this.#backends = new BackendPool(memory.backends);
    this.#ranges = new SlotRanges(Math.floor(memory.slots.length / SLOT_STRIDE));
    this.#servicesCapacity = servicesCapacity;
  }

  /**
   * The table as the maps hold it, e.g. left by a previous agent: `services` are wl_services'
   * entries, `memory` the arrays. Nothing is owned until claimed.
   */
  static fromMaps(services: ReadonlyArray<[Buffer, Buffer]>, memory: TableMemory, servicesCapacity?: number): ServiceTable {
    const table = new ServiceTable(memory, servicesCapacity);
    table.#backends.adoptAll();
    const ranges: Array<[number, number]> = [];
    for (const [keyBytes, value] of services) {
      const v = readServiceValue(value);
      const id = frontendIdOf(Array.from({ length: KEY_WORDS }, (_, i) => keyBytes.readUInt32LE(i * 4)));
      table.#frontends.set(id, { id, serviceId: v.serviceId, count: v.count, flags: v.flags, affinityTimeout: v.affinityTimeout, first: v.firstSlot, capacity: v.capacity, owner: undefined, groupPort: undefined, group: 0 });
      table.#nextServiceId = Math.max(table.#nextServiceId, v.serviceId + 1);
      if (v.capacity > 0) ranges.push([v.firstSlot, v.capacity]);
      for (let slot = 1; slot <= v.count; slot++) table.#backends.count(table.#slot(v.firstSlot, slot));
    }
    table.#ranges = SlotRanges.fromUsed(table.#ranges.size, ranges);
    table.#unnamed = table.#backends.unnamed();
    return table;
  }

  /** Service ports the table keeps state for. */
  get portCount(): number {
    return this.#ports.size;
  }

  get frontendCount(): number {
    return this.#frontends.size;
  }

  get backendCount(): number {
    return this.#backends.size;
  }

  /** wl_slots indices held by frontends. */
  get slotsInUse(): number {
    return this.#ranges.inUse;
  }

  /**
   * Takes the table to `changes` (each port's complete new set of frontends, or none): stores the
   * backends and slots no reader sees yet in place, and puts the entries to write, and what to
   * clear after them, into `writes`. With `sweep`, frontends nobody claims (adopted leftovers of
   * services that went while no agent ran) are removed too. Then the entries go to the kernel,
   * then finish().
   */
  plan(changes: readonly PortChange[], writes: MapWrites, options: { readonly sweep?: boolean } = {}): void {
    this.conflicts = [];
    this.unfit = [];
    this.#ranges.recycle();
    for (const id of this.#unnamed) writes.orphans.add(id);
    this.#unnamed = [];
    const released: Frontend[] = [];
    // Indexed loops: see frontendsOf.
    // Release first, so that a frontend moving from one port to another in the same change is free.
    for (let c = 0; c < changes.length; c++) {
      const { portKey, frontends } = changes[c]!;
      const port = this.#ports.get(portKey);
      if (port?.owned === undefined) continue;
      for (const id of port.owned) {
        const frontend = this.#frontends.get(id);
        if (frontend === undefined || frontends?.some((f) => f.id === id)) continue;
        frontend.owner = undefined;
        released.push(frontend);
      }
      port.owned = undefined;
      // Gone with no frontend carrying its ids: nothing will release it later.
      if (frontends === undefined && port.carriers.every((n) => n === 0)) this.#ports.delete(portKey);
    }
    const fresh: Fresh = { frontends: [], desired: [] };
    for (let c = 0; c < changes.length; c++) {
      const { portKey, frontends } = changes[c]!;
      if (frontends === undefined) continue;
      let port = this.#ports.get(portKey);
      if (port === undefined) {
        port = { owned: undefined, ids: perGroup(), carriers: perGroup() };
        this.#ports.set(portKey, port);
      }
      // Sized up front (see frontendsOf), cut if a frontend was another port's.
      const owned = new Array<string>(frontends.length);
      let n = 0;
      for (let i = 0; i < frontends.length; i++) {
        const desired = frontends[i]!;
        const existing = this.#frontends.get(desired.id);
        if (existing?.owner !== undefined && existing.owner !== portKey) {
          this.conflicts.push({ portKey, owner: existing.owner, frontend: describeFrontend(desired) });
          continue;
        }
        if (existing === undefined) {
          // Frontends going in this change still hold their entries until the deletes, after the writes.
          if (this.#frontends.size >= this.#servicesCapacity) {
            this.unfit.push({ portKey, frontend: describeFrontend(desired), table: 'services', kept: false });
            continue;
          }
          this.#create(desired, portKey, port, fresh);
        } else this.#update(desired, portKey, port, existing, writes);
        owned[n++] = desired.id;
      }
      owned.length = n;
      port.owned = owned;
    }
    this.#fill(fresh, writes);
    const gone = options.sweep ? [...this.#frontends.values()].filter((f) => f.owner === undefined) : released.filter((f) => f.owner === undefined);
    for (const frontend of gone) this.#remove(frontend, writes);
    writes.stores += this.#backends.takeStores();
  }

  /** After the entries are written: clears the slots they no longer name and the backends nothing names. */
  finish(writes: MapWrites): void {
    const clears = writes.clears;
    for (let i = 0; i < clears.length; i += 2) {
      this.#slots.fill(0, clears[i]! * SLOT_STRIDE, clears[i + 1]! * SLOT_STRIDE);
      writes.stores += clears[i + 1]! - clears[i]!;
    }
    for (const id of writes.orphans) this.#backends.release(id);
    writes.stores += this.#backends.takeStores();
  }

  #slot(first: number, slot: number): number {
    return this.#slots[(first + slot - 1) * SLOT_STRIDE]!;
  }

  /** A frontend that exists: its backends, slots and entry brought to `desired`. */
  #update(desired: DesiredFrontend, portKey: string, port: PortState, existing: Frontend, writes: MapWrites): void {
    const serviceId = this.#claimServiceId(portKey, port, desired.group, existing);
    const memory = this.#slots;
    // New references first, so that a backend that stays never drops to zero on the way.
    let count = this.#idsOf(desired, writes);
    let full: FullTable | undefined;
    if (count === BACKENDS_FULL) {
      full = 'backends';
      count = this.#keepIds(existing);
    }
    // In place while the range holds them and is not far too big; else a new range, visible with the entry.
    let inPlace = count <= existing.capacity && existing.capacity <= 4 * Math.max(capacityFor(count), 4);
    let capacity = inPlace ? existing.capacity : capacityFor(count);
    let first = inPlace ? existing.first : capacity === 0 ? 0 : this.#ranges.tryAllocate(capacity);
    if (first === undefined) {
      full = 'slots';
      this.#dropIds(count, writes);
      count = this.#keepIds(existing);
      [inPlace, capacity, first] = [true, existing.capacity, existing.first];
    }
    if (full !== undefined) this.unfit.push({ portKey, frontend: describeFrontend(desired), table: full, kept: true });
    const ids = Array.from(this.#ids.subarray(0, count));
    const old = this.#old;
    old.length = existing.count + 1;
    for (let slot = 1; slot <= existing.count; slot++) old[slot] = this.#slot(existing.first, slot);
    const slots = assignSlots(old, existing.count, ids);
    for (let slot = 1; slot <= count; slot++) {
      // A slot within the old count is only rewritten with another live backend.
      if (inPlace && slot <= existing.count && old[slot] === slots[slot]) continue;
      memory[(first + slot - 1) * SLOT_STRIDE] = slots[slot]!;
      writes.stores++;
    }
    if (inPlace && existing.count > count) writes.clears.push(first + count, first + existing.count);
    if (!inPlace) this.#giveUp(existing, writes);
    for (let slot = 1; slot <= existing.count; slot++) if (this.#backends.unref(old[slot]!)) writes.orphans.add(old[slot]!);
    if (existing.serviceId !== serviceId || existing.count !== count || existing.flags !== desired.flags || existing.affinityTimeout !== desired.affinityTimeout || existing.first !== first || existing.capacity !== capacity) {
      writeHead(writes.heads, desired.id, first, serviceId, count, desired.flags, desired.affinityTimeout, capacity);
    }
    if (existing.groupPort !== undefined && (existing.groupPort !== portKey || existing.group !== desired.group)) this.#releaseServiceId(existing.groupPort, existing.group);
    Object.assign(existing, { serviceId, count, flags: desired.flags, affinityTimeout: desired.affinityTimeout, first, capacity, owner: portKey, groupPort: portKey, group: desired.group });
  }

  /** A new frontend, whose backends, slot range and entry #fill() writes. */
  #create(desired: DesiredFrontend, portKey: string, port: PortState, fresh: Fresh): void {
    const serviceId = this.#claimServiceId(portKey, port, desired.group, undefined);
    const frontend: Frontend = { id: desired.id, serviceId, count: 0, flags: desired.flags, affinityTimeout: desired.affinityTimeout, first: 0, capacity: 0, owner: portKey, groupPort: portKey, group: desired.group };
    this.#frontends.set(desired.id, frontend);
    fresh.frontends.push(frontend);
    fresh.desired.push(desired);
  }

  /**
   * The backends, slots and entries of the frontends #create() made. One pass over all of them
   * rather than a loop per frontend: at a full sync's 100,000 backends the JIT optimizes this loop
   * early, where 10,000 short loops would mostly run unoptimized.
   */
  #fill(fresh: Fresh, writes: MapWrites): void {
    const memory = this.#slots;
    for (let f = 0; f < fresh.frontends.length; f++) {
      const frontend = fresh.frontends[f]!;
      const count = this.#idsOf(fresh.desired[f]!, writes);
      const ids = this.#ids;
      const capacity = count === BACKENDS_FULL ? 0 : capacityFor(count);
      const first = capacity === 0 ? 0 : this.#ranges.tryAllocate(capacity);
      if (count === BACKENDS_FULL || first === undefined) {
        if (first === undefined) this.#dropIds(count, writes);
        this.#unclaim(frontend);
        this.unfit.push({ portKey: frontend.groupPort!, frontend: describeFrontend(fresh.desired[f]!), table: count === BACKENDS_FULL ? 'backends' : 'slots', kept: false });
        continue;
      }
      for (let i = 0; i < count; i++) memory[(first + i) * SLOT_STRIDE] = ids[i]!;
      frontend.count = count;
      frontend.first = first;
      frontend.capacity = capacity;
      writes.stores += count;
      writeHead(writes.heads, frontend.id, first, frontend.serviceId, count, frontend.flags, frontend.affinityTimeout, capacity);
    }
  }

  /**
   * How many backends of its family the frontend has, each once: their ids in #ids, each with a
   * reference taken. BACKENDS_FULL, with no reference left taken, when a new one finds no free id.
   */
  #idsOf(desired: DesiredFrontend, writes: MapWrites): number {
    const pool = this.#backends;
    const { backends, family } = desired;
    const ids = this.#ids;
    const mark = pool.newMark();
    this.#idsMark = mark;
    let count = 0;
    for (let i = 0; i < backends.length && count < MAX_BACKENDS; i++) {
      const b = backends[i]!;
      if (b.ip.family !== family) continue;
      const id = pool.ref(b.ip, b.port, b.local, mark);
      if (id === BACKENDS_FULL) {
        // Nothing is written for a frontend that does not fit; the ids it took go back.
        this.#dropIds(count, writes);
        return BACKENDS_FULL;
      }
      if (id !== 0) ids[count++] = id;
    }
    return count;
  }

  /** Gives back the references the last #idsOf() took (its frontend did not fit after all). */
  #dropIds(count: number, writes: MapWrites): void {
    for (let i = 0; i < count; i++) if (this.#backends.rollback(this.#ids[i]!, this.#idsMark)) writes.orphans.add(this.#ids[i]!);
  }

  /** The backends the frontend's slots hold, in #ids with a reference each: what it keeps when its new ones do not fit. */
  #keepIds(existing: Frontend): number {
    for (let slot = 1; slot <= existing.count; slot++) {
      const id = this.#slot(existing.first, slot);
      this.#ids[slot - 1] = id;
      this.#backends.refId(id);
    }
    return existing.count;
  }

  /** A frontend #create() made that does not fit after all: forgotten, as if never planned. */
  #unclaim(frontend: Frontend): void {
    this.#frontends.delete(frontend.id);
    const port = this.#ports.get(frontend.groupPort!);
    const at = port?.owned?.indexOf(frontend.id) ?? -1;
    if (at >= 0) port!.owned!.splice(at, 1);
    this.#releaseServiceId(frontend.groupPort!, frontend.group);
  }

  #remove(frontend: Frontend, writes: MapWrites): void {
    const at = writes.headDeletes.add();
    keyWordsOfId(frontend.id, writes.headDeletes.keyWords, at * KEY_WORDS);
    for (let slot = 1; slot <= frontend.count; slot++) {
      const id = this.#slot(frontend.first, slot);
      if (this.#backends.unref(id)) writes.orphans.add(id);
    }
    this.#giveUp(frontend, writes);
    if (frontend.groupPort !== undefined) this.#releaseServiceId(frontend.groupPort, frontend.group);
    this.#frontends.delete(frontend.id);
  }

  /** A range no entry will name once the entries are written: cleared then, reused from the next change. */
  #giveUp(frontend: Frontend, writes: MapWrites): void {
    if (frontend.capacity === 0) return;
    writes.clears.push(frontend.first, frontend.first + frontend.count);
    this.#ranges.release(frontend.first, frontend.capacity);
  }

  /** The group's service id: kept while any of its frontends exists; an adopted frontend's id is taken over. */
  #claimServiceId(portKey: string, port: PortState, group: number, existing: Frontend | undefined): number {
    const carried = existing?.groupPort === portKey && existing.group === group;
    if (port.ids[group]! !== 0) {
      if (!carried) port.carriers[group]!++;
      return port.ids[group]!;
    }
    const adopted = existing?.groupPort === undefined ? existing?.serviceId : undefined;
    const id = adopted !== undefined && adopted > 0 && this.#serviceIdsUsed[adopted] !== 1 ? adopted : (this.#freeServiceIds.pop() ?? this.#nextServiceId++);
    port.ids[group] = id;
    port.carriers[group] = 1;
    if (id >= this.#serviceIdsUsed.length) {
      const grown = new Uint8Array(Math.max(id + 1, this.#serviceIdsUsed.length * 2));
      grown.set(this.#serviceIdsUsed);
      this.#serviceIdsUsed = grown;
    }
    this.#serviceIdsUsed[id] = 1;
    return id;
  }

  #releaseServiceId(portKey: string, group: number): void {
    const port = this.#ports.get(portKey);
    if (port === undefined || port.ids[group] === 0) return;
    if (--port.carriers[group]! > 0) return;
    this.#serviceIdsUsed[port.ids[group]!] = 0;
    this.#freeServiceIds.push(port.ids[group]!);
    port.ids[group] = 0;
    // A port that owns nothing and carries no id is forgotten (one mid-change has claimed ids first).
    if ((port.owned === undefined || port.owned.length === 0) && port.carriers.every((n) => n === 0)) this.#ports.delete(portKey);
  }
}

/**
 * The new slot array for a frontend whose backends become `want` (ids, each once): a backend that
 * stays keeps its slot when that slot is within the new count (affinity entries remember slots);
 * the free slots take the new backends and those that must move down from past the new count.
 */
export function assignSlots(old: readonly number[], oldCount: number, want: readonly number[]): number[] {
  const count = want.length;
  const wanted = new Set(want);
  const placed = new Set<number>();
  const slots: number[] = [0];
  const free: number[] = [];
  for (let slot = 1; slot <= count; slot++) {
    const id = slot <= oldCount ? (old[slot] ?? 0) : 0;
    if (id !== 0 && wanted.has(id) && !placed.has(id)) {
      slots.push(id);
      placed.add(id);
    } else {
      slots.push(0);
      free.push(slot);
    }
  }
  let next = 0;
  for (const id of want) {
    if (placed.has(id)) continue;
    slots[free[next++] ?? 0] = id;
  }
  return slots;
}



function writeHead(heads: EntryBatch, id: string, first: number, serviceId: number, count: number, flags: number, affinityTimeout: number, capacity: number): void {
  const at = heads.add(); // first: it may replace the buffer
  keyWordsOfId(id, heads.keyWords, at * KEY_WORDS);
  serviceValueWords(heads.valueWords, at * VALUE_WORDS, first, serviceId, count, flags, affinityTimeout, capacity);
}

function describeFrontend(f: DesiredFrontend): string {
  const where = f.addr === undefined ? `NodePort ${f.port}/IPv${f.family}` : `${formatIp(f.addr)} port ${f.port}`;
  return `${where} (${f.scope === 0 ? 'internal' : 'external'})`;
}
