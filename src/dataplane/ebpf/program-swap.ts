// Replacing a running program with the one this agent loaded, in place: a link's program by
// bpf_link_update, a clsact filter's by a replacing attach at the same handle and priority. Either
// way the hook never runs without a program, and packets or connects see the old program or the
// new one, whole. A running program is replaced when it is not the same as the loaded one: other
// code (the kernel's tag), other load-time constants (.rodata), or other maps than the ones this
// agent writes (after a map rebuild, or pins swapped under a program).
import {
  type BpfLink,
  type BpfObject,
  type ProgramDescription,
  type TcFilterId,
  openMapById,
  programInfoById,
  queryTcFilter,
} from '../../bpf/index.js';

/** One program replaced, for the log and the tests. */
export interface ProgramSwap {
  /** The program's name in the object, e.g. sock_connect4, np_ingress. */
  readonly program: string;
  /** Where it runs: a link pin path, or `clsact IFACE DIRECTION`. */
  readonly where: string;
  /** The link's kernel id (a link keeps it through the swap); undefined for clsact filters. */
  readonly linkId?: number;
  readonly from: { readonly id: number; readonly tag: string };
  readonly to: { readonly id: number; readonly tag: string };
  /** What differed: code, constants and/or maps. */
  readonly why: readonly SwapReason[];
}

export type SwapReason = 'code' | 'constants' | 'maps';

/** A running program that differs and could not be replaced; `why` says how it differs. */
export class ProgramSwapError extends Error {
  override readonly name = 'ProgramSwapError';

  constructor(
    readonly program: string,
    readonly where: string,
    readonly why: readonly SwapReason[],
    cause: unknown,
  ) {
    super(`replacing ${program} at ${where} (it differs in ${why.join(' and ')}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }

  /**
   * Only the code or constants differ: the running program serves the same maps correctly, so it
   * may run on (an upgrade deferred), where a program on other maps would serve stale services.
   */
  get keepable(): boolean {
    return !this.why.includes('maps');
  }
}

interface ProgramMaps {
  /** Ids of the maps the program shares with others (no '.' in the name), sorted. */
  readonly shared: readonly number[];
  /** Its read-only data (`const volatile`), or undefined when it has none. */
  readonly rodata: Buffer | undefined;
}

/** What differs between a running program and the loaded one; empty: the same program. */
function programDifferences(running: ProgramDescription, loaded: ProgramDescription): SwapReason[] {
  if (running.id === loaded.id) return [];
  const why: SwapReason[] = [];
  if (running.tag !== loaded.tag) why.push('code');
  const a = programMaps(running);
  const b = programMaps(loaded);
  if (!sameBytes(a.rodata, b.rodata)) why.push('constants');
  if (a.shared.join() !== b.shared.join()) why.push('maps');
  return why;
}

/**
 * Swaps the link's program for `program` of the loaded object when they differ; undefined when
 * they are the same. The swap names the program it replaces, so a link another process changed
 * meanwhile fails with EPERM instead of being overwritten.
 */
export function swapLinkProgram(link: BpfLink, object: BpfObject, program: string, where: string): ProgramSwap | undefined {
  const { id: linkId, progId } = link.info();
  const running = programInfoById(progId);
  const loaded = object.programInfo(program);
  const why = programDifferences(running, loaded);
  if (why.length === 0) return undefined;
  try {
    link.update(object.programFd(program), { expectedProgramId: running.id });
  } catch (error) {
    throw new ProgramSwapError(program, where, why, error);
  }
  return { program, where, linkId, from: brief(running), to: brief(loaded), why };
}

/**
 * Swaps the program of our clsact filter (which must exist) for `program` when they differ. The
 * kernel replaces the filter's program in place (cls_bpf swaps it under RCU).
 */
export function swapFilterProgram(filter: TcFilterId, object: BpfObject, program: string): ProgramSwap | undefined {
  const where = `clsact ${String(filter.interface)} ${filter.direction}`;
  const progId = queryTcFilter(filter);
  if (progId === undefined) throw new Error(`${where}: no filter at handle ${filter.handle} priority ${filter.priority} to replace`);
  const running = programInfoById(progId);
  const loaded = object.programInfo(program);
  const why = programDifferences(running, loaded);
  if (why.length === 0) return undefined;
  try {
    object.attachTc(program, filter, { mode: 'clsact', handle: filter.handle, priority: filter.priority, replace: true });
  } catch (error) {
    throw new ProgramSwapError(program, where, why, error);
  }
  return { program, where, from: brief(running), to: brief(loaded), why };
}

/**
 * `swap()`'s result, or undefined when it failed with a ProgramSwapError that leaves a correct
 * program running (passed to `kept`); any other failure is thrown.
 */
export function swapOrKeep(swap: () => ProgramSwap | undefined, kept: (error: ProgramSwapError) => void): ProgramSwap | undefined {
  try {
    return swap();
  } catch (error) {
    if (!(error instanceof ProgramSwapError && error.keepable)) throw error;
    kept(error);
    return undefined;
  }
}

/** The fields of a swap worth a log line. */
export function swapLogFields(swap: ProgramSwap): Record<string, unknown> {
  return {
    program: swap.program,
    where: swap.where,
    ...(swap.linkId !== undefined && { linkId: swap.linkId }),
    fromId: swap.from.id,
    fromTag: swap.from.tag,
    toId: swap.to.id,
    toTag: swap.to.tag,
    why: swap.why.join(','),
  };
}

function brief(program: ProgramDescription): { id: number; tag: string } {
  return { id: program.id, tag: program.tag };
}

function programMaps(program: ProgramDescription): ProgramMaps {
  const shared: number[] = [];
  let rodata: Buffer | undefined;
  for (const id of program.mapIds) {
    const map = openMapById(id);
    try {
      // Maps a program declares have C identifiers for names; libbpf's own are "<obj>.rodata" etc.
      if (!map.name.includes('.')) shared.push(id);
      else if (map.name.endsWith('.rodata')) rodata = map.lookup(Buffer.alloc(4));
    } finally {
      map.close();
    }
  }
  return { shared: shared.sort((x, y) => x - y), rodata };
}

function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.equals(b);
}
