// Which port a new proxy socket binds: any free one (port 0, the kernel's choice), or one from
// --proxy-port-range, trying the next one when a port is taken by another process.

export interface PortRange {
  readonly min: number;
  readonly max: number;
}

export class PortRangeError extends Error {
  override readonly name = 'PortRangeError';
}

export function validatePortRange(range: PortRange): PortRange {
  const ok = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (!ok(range.min) || !ok(range.max) || range.min > range.max) {
    throw new PortRangeError(`proxyPortRange ${range.min}-${range.max}: must be 1 <= min <= max <= 65535`);
  }
  return range;
}

export class ProxyPorts {
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(private readonly range: PortRange | undefined) {
    this.cursor = range?.min ?? 0;
  }

  /**
   * Ports to try, in order: [0] without a range; otherwise every range port this instance does not
   * use, starting after the last one handed out (a port just released is not reused at once, so
   * a late packet of an old flow does not reach a new service).
   */
  *candidates(): Generator<number> {
    const range = this.range;
    if (range === undefined) {
      yield 0;
      return;
    }
    const size = range.max - range.min + 1;
    for (let i = 0; i < size; i++) {
      const port = range.min + ((this.cursor - range.min + i) % size);
      if (!this.used.has(port)) yield port;
    }
  }

  /** Records a port as bound (the one the kernel chose when the candidate was 0). */
  take(port: number): void {
    this.used.add(port);
    if (this.range !== undefined) this.cursor = port === this.range.max ? this.range.min : port + 1;
  }

  release(port: number): void {
    this.used.delete(port);
  }

  /** Binds with `open` on the first candidate that is not in use elsewhere (EADDRINUSE). */
  async bind<T extends { readonly port: number }>(open: (port: number) => Promise<T>): Promise<T> {
    for (const port of this.candidates()) {
      try {
        const bound = await open(port);
        this.take(bound.port);
        return bound;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || this.range === undefined) throw err;
      }
    }
    throw new PortRangeError(`proxyPortRange ${this.range?.min}-${this.range?.max}: no free port left`);
  }
}
