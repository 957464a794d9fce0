// What wl_services and wl_backends hold, mirrored in memory, and the writes that take them to a
// new set of frontends: only the frontends that differ, backends and slots before the count, the
// count before the tail goes (bpf/include/wirelane_maps.h says why that keeps readers safe).
// No I/O here: the writes land in EntryBatches the proxy sends to the kernel.
import { formatIp } from '../../model/ip.js';
import { BackendPool } from './backend-pool.js';
import { BACKEND_FAMILY_OFFSET, EntryBatch, MAP_LAYOUTS, readBackendValue, readServiceValue, serviceValueWords, slotKeyWords } from './codec.js';
import { type DesiredFrontend, GROUPS, frontendIdOf } from './frontends.js';

/** A frontend as programmed. */
interface Frontend {
  readonly id: string;
  /** The slot-0 key words. */
  readonly key: readonly number[];
  serviceId: number;
  count: number;
  flags: number;
  affinityTimeout: number;
  /** slots[i]: the backend id in slot i (index 0 unused). May run past count after an interrupted change: that tail is deleted by the next write. */
  slots: number[];
  /** The servicePortKey that claimed it; undefined for one adopted from the maps and not yet claimed. */
  owner: string | undefined;
  /** The service port and group (frontends.GROUPS) whose service id it carries; undefined while adopted and unclaimed. */
  groupPort: string | undefined;
  group: number;
}

/** Where one apply's writes go, in the order the proxy sends them. */
export class MapWrites {
  readonly backends = new EntryBatch(MAP_LAYOUTS.wl_backends.key, MAP_LAYOUTS.wl_backends.value);
  /** Backend slots (1..count), before any count grows. */
  readonly slots = new EntryBatch(MAP_LAYOUTS.wl_services.key, MAP_LAYOUTS.wl_services.value);
  /** Service entries (slot 0). */
  readonly heads = new EntryBatch(MAP_LAYOUTS.wl_services.key, MAP_LAYOUTS.wl_services.value);
  /** Service entries of frontends that go, before their slots. */
  readonly headDeletes = new EntryBatch(MAP_LAYOUTS.wl_services.key, 0);
  /** Slots past the new count, after the count shrank. */
  readonly slotDeletes = new EntryBatch(MAP_LAYOUTS.wl_services.key, 0);
  /** Backends nothing names any more: zeroed (wl_backends is an array), after the slots that named them are gone. */
  readonly backendDeletes = new EntryBatch(MAP_LAYOUTS.wl_backends.key, MAP_LAYOUTS.wl_backends.value);

  get total(): number {
    return this.backends.count + this.slots.count + this.heads.count + this.headDeletes.count + this.slotDeletes.count + this.backendDeletes.count;
  }

  clear(): void {
    for (const batch of [this.backends, this.slots, this.heads, this.headDeletes, this.slotDeletes, this.backendDeletes]) batch.clear();
  }
}

/** One service port's frontends after a change; undefined when the port is gone. */
export interface PortChange {
  readonly portKey: string;
  readonly frontends: readonly DesiredFrontend[] | undefined;
}

/** The most slots a frontend can have (count is 16 bits). */
export const MAX_BACKENDS = 0xffff;

const KEY_WORDS = MAP_LAYOUTS.wl_services.key / 4;
const VALUE_WORDS = MAP_LAYOUTS.wl_services.value / 4;

export class ServiceTable {
  readonly #frontends = new Map<string, Frontend>();
  readonly #owned = new Map<string, string[]>();
  readonly #backends = new BackendPool();
  /** Per service port: each group's service id (0: none) and how many frontends carry it. */
  readonly #serviceIds = new Map<string, { readonly ids: number[]; readonly frontends: number[] }>();
  readonly #serviceIdsUsed = new Set<number>();
  #nextServiceId = 1;
  readonly #freeServiceIds: number[] = [];

  /** Frontends a port could not claim because another port holds them (last plan). */
  conflicts: Array<{ portKey: string; owner: string; frontend: string }> = [];

  /** The table as the pinned maps hold it, e.g. left by a previous agent: nothing is owned until claimed. */
  static fromEntries(services: ReadonlyArray<[Buffer, Buffer]>, backends: ReadonlyArray<[Buffer, Buffer]>): ServiceTable {
    const table = new ServiceTable();
    // The array holds every id: the unused ones are all zero.
    for (const [key, value] of backends) if (value[BACKEND_FAMILY_OFFSET] !== 0) table.#backends.adopt(key.readUInt32LE(0), readBackendValue(value));
    for (const [keyBytes, value] of services) {
      const key = Array.from({ length: KEY_WORDS }, (_, i) => keyBytes.readUInt32LE(i * 4));
      const slot = key[4]! >>> 16;
      key[4] = key[4]! & 0xffff;
      const id = frontendIdOf(key);
      let frontend = table.#frontends.get(id);
      if (frontend === undefined) {
        frontend = { id, key, serviceId: 0, count: 0, flags: 0, affinityTimeout: 0, slots: [0], owner: undefined, groupPort: undefined, group: 0 };
        table.#frontends.set(id, frontend);
      }
      const v = readServiceValue(value);
      if (slot === 0) {
        Object.assign(frontend, { serviceId: v.serviceId, count: v.count, flags: v.flags, affinityTimeout: v.affinityTimeout });
        table.#nextServiceId = Math.max(table.#nextServiceId, v.serviceId + 1);
      } else {
        while (frontend.slots.length <= slot) frontend.slots.push(0);
        frontend.slots[slot] = v.backendId;
        table.#backends.count(v.backendId);
      }
    }
    return table;
  }

  get frontendCount(): number {
    return this.#frontends.size;
  }

  get backendCount(): number {
    return this.#backends.size;
  }

  /**
   * Takes the table to `changes` (each port's complete new set of frontends, or none), writing the
   * difference into `writes`. With `sweep`, frontends nobody claims (adopted leftovers of services
   * that went while no agent ran) are removed too.
   */
  plan(changes: readonly PortChange[], writes: MapWrites, options: { readonly sweep?: boolean } = {}): void {
    this.conflicts = [];
    const released: Frontend[] = [];
    // Release first, so that a frontend moving from one port to another in the same change is free.
    for (const { portKey, frontends } of changes) {
      const owned = this.#owned.get(portKey);
      if (owned === undefined) continue;
      for (const id of owned) {
        const frontend = this.#frontends.get(id);
        if (frontend === undefined || frontends?.some((f) => f.id === id)) continue;
        frontend.owner = undefined;
        released.push(frontend);
      }
      this.#owned.delete(portKey);
    }
    const orphaned = new Set<number>();
    // A full sync writes ~every slot and backend: size the batches once instead of doubling.
    let slots = 0;
    for (const { frontends } of changes) for (const f of frontends ?? []) slots += f.backends.length;
    writes.slots.reserve(writes.slots.count + slots);
    writes.backends.reserve(writes.backends.count + slots);
    this.#backends.reserve(slots);
    for (const { portKey, frontends } of changes) {
      if (frontends === undefined) continue;
      const owned: string[] = [];
      for (const desired of frontends) {
        const existing = this.#frontends.get(desired.id);
        if (existing?.owner !== undefined && existing.owner !== portKey) {
          this.conflicts.push({ portKey, owner: existing.owner, frontend: describeFrontend(desired) });
          continue;
        }
        this.#write(desired, portKey, existing, writes, orphaned);
        owned.push(desired.id);
      }
      this.#owned.set(portKey, owned);
    }
    const gone = options.sweep ? [...this.#frontends.values()].filter((f) => f.owner === undefined) : released.filter((f) => f.owner === undefined);
    for (const frontend of gone) this.#remove(frontend, writes, orphaned);
    for (const id of orphaned) this.#backends.release(id, writes.backendDeletes);
  }

  #write(desired: DesiredFrontend, portKey: string, existing: Frontend | undefined, writes: MapWrites, orphaned: Set<number>): void {
    const serviceId = this.#claimServiceId(portKey, desired.group, existing);
    const backends = desired.backends.length > MAX_BACKENDS ? desired.backends.slice(0, MAX_BACKENDS) : desired.backends;
    // slots[0] is unused: a new frontend's slots are its backends in order.
    const ids = [0];
    for (const b of backends) ids.push(this.#backends.ref(b.ip, b.port, b.local, writes.backends));
    const oldSlots = existing?.slots ?? [0];
    const slots = existing === undefined ? ids : assignSlots(oldSlots, existing.count, ids.slice(1));
    const count = ids.length - 1;
    const key = desired.key;
    const idChanged = existing?.serviceId !== serviceId;
    const batch = writes.slots;
    for (let slot = 1; slot <= count; slot++) {
      const backendId = slots[slot]!;
      if (!idChanged && slot < oldSlots.length && oldSlots[slot] === backendId) continue;
      const at = batch.add();
      slotKeyWords(key, slot, batch.keyWords, at * KEY_WORDS);
      serviceValueWords(batch.valueWords, at * VALUE_WORDS, backendId, serviceId, 0, 0, 0);
    }
    if (idChanged || existing === undefined || existing.count !== count || existing.flags !== desired.flags || existing.affinityTimeout !== desired.affinityTimeout) {
      const at = writes.heads.add();
      slotKeyWords(key, 0, writes.heads.keyWords, at * KEY_WORDS);
      serviceValueWords(writes.heads.valueWords, at * VALUE_WORDS, 0, serviceId, count, desired.flags, desired.affinityTimeout);
    }
    for (let slot = count + 1; slot < oldSlots.length; slot++) deleteSlot(writes.slotDeletes, key, slot);
    // New references were taken above, so a backend that stays never drops to zero on the way.
    for (let slot = 1; slot < oldSlots.length; slot++) this.#unrefBackend(oldSlots[slot] ?? 0, orphaned);
    if (existing === undefined) {
      this.#frontends.set(desired.id, { id: desired.id, key, serviceId, count, flags: desired.flags, affinityTimeout: desired.affinityTimeout, slots, owner: portKey, groupPort: portKey, group: desired.group });
    } else {
      if (existing.groupPort !== undefined && (existing.groupPort !== portKey || existing.group !== desired.group)) this.#releaseServiceId(existing.groupPort, existing.group);
      Object.assign(existing, { serviceId, count, flags: desired.flags, affinityTimeout: desired.affinityTimeout, slots, owner: portKey, groupPort: portKey, group: desired.group });
    }
  }

  #remove(frontend: Frontend, writes: MapWrites, orphaned: Set<number>): void {
    const at = writes.headDeletes.add();
    slotKeyWords(frontend.key, 0, writes.headDeletes.keyWords, at * KEY_WORDS);
    for (let slot = 1; slot < frontend.slots.length; slot++) {
      deleteSlot(writes.slotDeletes, frontend.key, slot);
      this.#unrefBackend(frontend.slots[slot] ?? 0, orphaned);
    }
    if (frontend.groupPort !== undefined) this.#releaseServiceId(frontend.groupPort, frontend.group);
    this.#frontends.delete(frontend.id);
  }

  #unrefBackend(id: number, orphaned: Set<number>): void {
    if (this.#backends.unref(id)) orphaned.add(id);
  }

  /** The group's service id: kept while any of its frontends exists; an adopted frontend's id is taken over. */
  #claimServiceId(portKey: string, group: number, existing: Frontend | undefined): number {
    let port = this.#serviceIds.get(portKey);
    if (port === undefined) {
      port = { ids: new Array<number>(GROUPS).fill(0), frontends: new Array<number>(GROUPS).fill(0) };
      this.#serviceIds.set(portKey, port);
    }
    const carried = existing?.groupPort === portKey && existing.group === group;
    if (port.ids[group]! !== 0) {
      if (!carried) port.frontends[group]!++;
      return port.ids[group]!;
    }
    const adopted = existing?.groupPort === undefined ? existing?.serviceId : undefined;
    const id = adopted !== undefined && adopted > 0 && !this.#serviceIdsUsed.has(adopted) ? adopted : (this.#freeServiceIds.pop() ?? this.#nextServiceId++);
    port.ids[group] = id;
    port.frontends[group] = 1;
    this.#serviceIdsUsed.add(id);
    return id;
  }

  #releaseServiceId(portKey: string, group: number): void {
    const port = this.#serviceIds.get(portKey);
    if (port === undefined || port.ids[group] === 0) return;
    if (--port.frontends[group]! > 0) return;
    this.#serviceIdsUsed.delete(port.ids[group]!);
    this.#freeServiceIds.push(port.ids[group]!);
    port.ids[group] = 0;
    if (port.frontends.every((n) => n === 0)) this.#serviceIds.delete(portKey);
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

function deleteSlot(batch: EntryBatch, key: readonly number[], slot: number): void {
  const at = batch.add(); // first: it may replace the buffer
  slotKeyWords(key, slot, batch.keyWords, at * KEY_WORDS);
}

function describeFrontend(f: DesiredFrontend): string {
  const where = f.addr === undefined ? `NodePort ${f.port}/IPv${f.family}` : `${formatIp(f.addr)} port ${f.port}`;
  return `${where} (${f.scope === 0 ? 'internal' : 'external'})`;
}
