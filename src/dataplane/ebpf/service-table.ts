// What wl_services and wl_backends hold, mirrored in memory, and the writes that take them to a
// new set of frontends: only the frontends that differ, backends and slots before the count, the
// count before the tail goes (bpf/include/wirelane_maps.h says why that keeps readers safe).
// No I/O here: the writes land in EntryBatches the proxy sends to the kernel.
import { formatIp } from '../../model/ip.js';
import type { ServiceBackend } from '../../model/service.js';
import {
  BackendFlag,
  EntryBatch,
  MAP_LAYOUTS,
  SERVICE_KEY_SLOT_OFFSET,
  type BackendValue,
  readBackendValue,
  readServiceValue,
  writeBackendKey,
  writeBackendValue,
  writeServiceValue,
} from './codec.js';
import type { DesiredFrontend } from './frontends.js';

/** A frontend as programmed. */
interface Frontend {
  readonly id: string;
  serviceId: number;
  count: number;
  flags: number;
  affinityTimeout: number;
  /** slots[i]: the backend id in slot i (index 0 unused). May run past count after an interrupted change: that tail is deleted by the next write. */
  slots: number[];
  /** The servicePortKey that claimed it; undefined for one adopted from the maps and not yet claimed. */
  owner: string | undefined;
  group: string | undefined;
}

interface Backend {
  readonly id: number;
  readonly identity: string;
  value: BackendValue;
  /** Slots that name it. */
  refs: number;
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
  readonly backendDeletes = new EntryBatch(MAP_LAYOUTS.wl_backends.key, 0);

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

const SERVICE_KEY = MAP_LAYOUTS.wl_services.key;
const SERVICE_VALUE = MAP_LAYOUTS.wl_services.value;

export class ServiceTable {
  readonly #frontends = new Map<string, Frontend>();
  readonly #owned = new Map<string, string[]>();
  readonly #backends = new Map<number, Backend>();
  readonly #backendIds = new Map<string, number>();
  readonly #groups = new Map<string, { id: number; frontends: number }>();
  readonly #serviceIdGroups = new Map<number, string>();
  #nextBackendId = 1;
  #nextServiceId = 1;
  readonly #freeBackendIds: number[] = [];
  readonly #freeServiceIds: number[] = [];

  /** Frontends a port could not claim because another port holds them (last plan). */
  conflicts: Array<{ portKey: string; owner: string; frontend: string }> = [];

  /** The table as the pinned maps hold it, e.g. left by a previous agent: nothing is owned until claimed. */
  static fromEntries(services: ReadonlyArray<[Buffer, Buffer]>, backends: ReadonlyArray<[Buffer, Buffer]>): ServiceTable {
    const table = new ServiceTable();
    for (const [key, value] of backends) {
      const id = key.readUInt32LE(0);
      const backend = readBackendValue(value);
      table.#backends.set(id, { id, identity: backendIdentity(backend.addr.family, backend.addr.value, backend.port), value: backend, refs: 0 });
      table.#backendIds.set(backendIdentity(backend.addr.family, backend.addr.value, backend.port), id);
      table.#nextBackendId = Math.max(table.#nextBackendId, id + 1);
    }
    const headKey = Buffer.alloc(SERVICE_KEY);
    for (const [key, value] of services) {
      key.copy(headKey);
      const slot = headKey.readUInt16LE(SERVICE_KEY_SLOT_OFFSET);
      headKey.writeUInt16LE(0, SERVICE_KEY_SLOT_OFFSET);
      const id = headKey.toString('latin1');
      let frontend = table.#frontends.get(id);
      if (frontend === undefined) {
        frontend = { id, serviceId: 0, count: 0, flags: 0, affinityTimeout: 0, slots: [0], owner: undefined, group: undefined };
        table.#frontends.set(id, frontend);
      }
      const v = readServiceValue(value);
      if (slot === 0) {
        Object.assign(frontend, { serviceId: v.serviceId, count: v.count, flags: v.flags, affinityTimeout: v.affinityTimeout });
        table.#nextServiceId = Math.max(table.#nextServiceId, v.serviceId + 1);
      } else {
        while (frontend.slots.length <= slot) frontend.slots.push(0);
        frontend.slots[slot] = v.backendId;
        const backend = table.#backends.get(v.backendId);
        if (backend) backend.refs++;
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
      const wanted = new Set(frontends?.map((f) => f.id));
      for (const id of this.#owned.get(portKey) ?? []) {
        const frontend = this.#frontends.get(id);
        if (frontend === undefined || wanted.has(id)) continue;
        frontend.owner = undefined;
        released.push(frontend);
      }
      this.#owned.delete(portKey);
    }
    const orphaned = new Set<number>();
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
    for (const id of orphaned) {
      const backend = this.#backends.get(id);
      if (backend === undefined || backend.refs > 0) continue;
      const at = writes.backendDeletes.add();
      writeBackendKey(writes.backendDeletes.keys, at * 4, id);
      this.#backends.delete(id);
      this.#backendIds.delete(backend.identity);
      this.#freeBackendIds.push(id);
    }
  }

  #write(desired: DesiredFrontend, portKey: string, existing: Frontend | undefined, writes: MapWrites, orphaned: Set<number>): void {
    const serviceId = this.#claimServiceId(desired.group, existing);
    const want = desired.backends.slice(0, MAX_BACKENDS).map((b) => this.#refBackend(b, writes));
    const oldSlots = existing?.slots ?? [0];
    const oldCount = existing?.count ?? 0;
    const slots = assignSlots(oldSlots, oldCount, want);
    const count = want.length;
    const key = Buffer.from(desired.id, 'latin1');
    const idChanged = existing?.serviceId !== serviceId;
    for (let slot = 1; slot <= count; slot++) {
      const backendId = slots[slot] ?? 0;
      if (!idChanged && slot < oldSlots.length && oldSlots[slot] === backendId) continue;
      const at = writes.slots.add();
      key.copy(writes.slots.keys, at * SERVICE_KEY);
      writes.slots.keys.writeUInt16LE(slot, at * SERVICE_KEY + SERVICE_KEY_SLOT_OFFSET);
      writeServiceValue(writes.slots.values, at * SERVICE_VALUE, backendId, serviceId, 0, 0, 0);
    }
    if (idChanged || existing === undefined || existing.count !== count || existing.flags !== desired.flags || existing.affinityTimeout !== desired.affinityTimeout) {
      const at = writes.heads.add();
      key.copy(writes.heads.keys, at * SERVICE_KEY);
      writeServiceValue(writes.heads.values, at * SERVICE_VALUE, 0, serviceId, count, desired.flags, desired.affinityTimeout);
    }
    for (let slot = count + 1; slot < oldSlots.length; slot++) deleteSlot(writes.slotDeletes, key, slot);
    // New references were taken above, so a backend that stays never drops to zero on the way.
    for (let slot = 1; slot < oldSlots.length; slot++) this.#unrefBackend(oldSlots[slot] ?? 0, orphaned);
    if (existing === undefined) {
      this.#frontends.set(desired.id, { id: desired.id, serviceId, count, flags: desired.flags, affinityTimeout: desired.affinityTimeout, slots, owner: portKey, group: desired.group });
    } else {
      if (existing.group !== desired.group && existing.group !== undefined) this.#releaseServiceId(existing.group);
      Object.assign(existing, { serviceId, count, flags: desired.flags, affinityTimeout: desired.affinityTimeout, slots, owner: portKey, group: desired.group });
    }
  }

  #remove(frontend: Frontend, writes: MapWrites, orphaned: Set<number>): void {
    const key = Buffer.from(frontend.id, 'latin1');
    const at = writes.headDeletes.add();
    key.copy(writes.headDeletes.keys, at * SERVICE_KEY);
    for (let slot = 1; slot < frontend.slots.length; slot++) {
      deleteSlot(writes.slotDeletes, key, slot);
      this.#unrefBackend(frontend.slots[slot] ?? 0, orphaned);
    }
    if (frontend.group !== undefined) this.#releaseServiceId(frontend.group);
    this.#frontends.delete(frontend.id);
  }

  #refBackend(b: ServiceBackend, writes: MapWrites): number {
    const identity = backendIdentity(b.ip.family, b.ip.value, b.port);
    const flags = b.local ? BackendFlag.local : 0;
    const known = this.#backendIds.get(identity);
    let backend = known === undefined ? undefined : this.#backends.get(known);
    if (backend === undefined) {
      const id = this.#freeBackendIds.pop() ?? this.#nextBackendId++;
      backend = { id, identity, value: { addr: b.ip, port: b.port, flags }, refs: 0 };
      this.#backends.set(id, backend);
      this.#backendIds.set(identity, id);
      writeBackend(writes.backends, backend);
    } else if (backend.value.flags !== flags) {
      backend.value = { ...backend.value, flags };
      writeBackend(writes.backends, backend);
    }
    backend.refs++;
    return backend.id;
  }

  #unrefBackend(id: number, orphaned: Set<number>): void {
    const backend = this.#backends.get(id);
    if (backend === undefined) return;
    backend.refs--;
    if (backend.refs <= 0) orphaned.add(id);
  }

  /** The group's service id: kept while any of its frontends exists; an adopted frontend's id is taken over. */
  #claimServiceId(group: string, existing: Frontend | undefined): number {
    const known = this.#groups.get(group);
    if (known !== undefined) {
      if (existing?.group !== group) known.frontends++;
      return known.id;
    }
    let id: number;
    const adopted = existing?.group === undefined ? existing?.serviceId : undefined;
    if (adopted !== undefined && adopted > 0 && !this.#serviceIdGroups.has(adopted)) id = adopted;
    else id = this.#freeServiceIds.pop() ?? this.#nextServiceId++;
    this.#groups.set(group, { id, frontends: 1 });
    this.#serviceIdGroups.set(id, group);
    return id;
  }

  #releaseServiceId(group: string): void {
    const known = this.#groups.get(group);
    if (known === undefined) return;
    if (--known.frontends > 0) return;
    this.#groups.delete(group);
    this.#serviceIdGroups.delete(known.id);
    this.#freeServiceIds.push(known.id);
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

function backendIdentity(family: number, value: bigint, port: number): string {
  return `${family}/${value}/${port}`;
}

function writeBackend(batch: EntryBatch, backend: Backend): void {
  const at = batch.add();
  writeBackendKey(batch.keys, at * batch.keySize, backend.id);
  writeBackendValue(batch.values, at * batch.valueSize, backend.value);
}

function deleteSlot(batch: EntryBatch, key: Buffer, slot: number): void {
  const at = batch.add();
  key.copy(batch.keys, at * SERVICE_KEY);
  batch.keys.writeUInt16LE(slot, at * SERVICE_KEY + SERVICE_KEY_SLOT_OFFSET);
}

function describeFrontend(f: DesiredFrontend): string {
  const where = f.addr === undefined ? `NodePort ${f.port}/IPv${f.family}` : `${formatIp(f.addr)} port ${f.port}`;
  return `${where} (${f.scope === 0 ? 'internal' : 'external'})`;
}
