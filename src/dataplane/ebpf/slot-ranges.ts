// Which ranges of wl_slots belong to a service frontend and which are free. Capacities come in
// classes (1, 2, 3, 4, 6, 8, 12, 16, 24, ...: each about 1.5 times the last), so a frontend grows in
// place for a while and a freed range fits the next frontend of its class. A released range is
// reusable only from the next change on: until the entry that named it is replaced, a reader may
// still follow it (bpf/include/wirelane_maps.h).

/** The most slots one range holds (wl_service_value.capacity is 16 bits). */
const MAX_CAPACITY = 0xffff;

/** The capacity class a frontend of `count` backends gets: the smallest class that holds them. */
export function capacityFor(count: number): number {
  if (count <= 2) return count;
  const power = 2 ** Math.floor(Math.log2(count));
  const capacity = count === power ? power : count <= power * 1.5 ? power * 1.5 : power * 2;
  return Math.min(capacity, MAX_CAPACITY);
}

/** The largest class that fits in `length` slots. */
function classWithin(length: number): number {
  const above = capacityFor(length);
  if (above <= length) return above;
  // The class below `above`: 1, 2, 3, 4, 6, 8, 12, ...
  if (above <= 4) return above - 1;
  const power = 2 ** Math.floor(Math.log2(above));
  return above === power ? (power / 4) * 3 : power;
}

export class SlotRangesFullError extends Error {
  override readonly name = 'SlotRangesFullError';
}

export class SlotRanges {
  /** Everything from here to the end of the map is free. */
  #next = 0;
  /** Free ranges by capacity: their first slots. */
  readonly #free = new Map<number, number[]>();
  /** Released in this change: free from the next one. */
  #released: number[] = [];
  #inUse = 0;

  /** `size`: the slots wl_slots holds. */
  constructor(readonly size: number) {}

  /** The allocator for a map whose entries hold `ranges` ([first slot, capacity] each), as read back from the kernel. */
  static fromUsed(size: number, ranges: ReadonlyArray<readonly [number, number]>): SlotRanges {
    const out = new SlotRanges(size);
    const sorted = [...ranges].filter(([, capacity]) => capacity > 0).sort((a, b) => a[0] - b[0]);
    let end = 0;
    for (const [first, capacity] of sorted) {
      if (first > end) out.#carve(end, first - end);
      end = Math.max(end, first + capacity);
      out.#inUse += capacity;
    }
    out.#next = end;
    return out;
  }

  /** Slots held by ranges in use. */
  get inUse(): number {
    return this.#inUse;
  }

  /** A free range of `capacity` slots (a class, capacityFor): its first slot. */
  allocate(capacity: number): number {
    const first = this.tryAllocate(capacity);
    if (first === undefined) throw new SlotRangesFullError(`wl_slots is full: ${this.#inUse} of ${this.size} slots in use, no free range of ${capacity}`);
    return first;
  }

  /** Like allocate(), but undefined when no free range of `capacity` is left. */
  tryAllocate(capacity: number): number | undefined {
    let first = this.#take(capacity);
    if (first === undefined) {
      this.#coalesce();
      first = this.#take(capacity);
    }
    if (first !== undefined) this.#inUse += capacity;
    return first;
  }

  release(first: number, capacity: number): void {
    if (capacity === 0) return;
    this.#released.push(first, capacity);
    this.#inUse -= capacity;
  }

  /** Makes the ranges released by earlier changes reusable: called as a change starts. */
  recycle(): void {
    for (let i = 0; i < this.#released.length; i += 2) this.#free1(this.#released[i]!, this.#released[i + 1]!);
    this.#released = [];
  }

  #take(capacity: number): number | undefined {
    const exact = this.#free.get(capacity)?.pop();
    if (exact !== undefined) return exact;
    if (this.#next + capacity <= this.size) {
      const first = this.#next;
      this.#next += capacity;
      return first;
    }
    // The smallest bigger free range, split.
    let best: number | undefined;
    for (const [size, firsts] of this.#free) if (size > capacity && firsts.length > 0 && (best === undefined || size < best)) best = size;
    if (best === undefined) return undefined;
    const first = this.#free.get(best)!.pop()!;
    this.#carve(first + capacity, best - capacity);
    return first;
  }

  /** Merges adjacent free ranges (and the tail into the bump area), then carves them again. */
  #coalesce(): void {
    const ranges: Array<[number, number]> = [];
    for (const [size, firsts] of this.#free) for (const first of firsts) ranges.push([first, size]);
    this.#free.clear();
    ranges.sort((a, b) => a[0] - b[0]);
    const merged: Array<[number, number]> = [];
    for (const [first, size] of ranges) {
      const last = merged[merged.length - 1];
      if (last !== undefined && last[0] + last[1] === first) last[1] += size;
      else merged.push([first, size]);
    }
    const tail = merged[merged.length - 1];
    if (tail !== undefined && tail[0] + tail[1] === this.#next) {
      this.#next = tail[0];
      merged.pop();
    }
    for (const [first, size] of merged) this.#carve(first, size);
  }

  /** Free ranges of classes that tile [first, first + length). */
  #carve(first: number, length: number): void {
    while (length > 0) {
      const capacity = classWithin(length);
      this.#free1(first, capacity);
      first += capacity;
      length -= capacity;
    }
  }

  #free1(first: number, capacity: number): void {
    let firsts = this.#free.get(capacity);
    if (firsts === undefined) {
      firsts = [];
      this.#free.set(capacity, firsts);
    }
    firsts.push(first);
  }
}
