// Reading pins and clsact filters where "not there" is an answer, not a failure: a missing pin, a
// pin that holds no link, a filter on an interface without a clsact qdisc (or gone).
import { BpfError, detachTcFilter, queryTcFilter, type TcFilterId } from '../../bpf/index.js';

/** What `open` returns, or undefined when the pin is missing (BpfError ENOENT). */
export function unlessMissing<T>(open: () => T): T | undefined {
  try {
    return open();
  } catch (error) {
    if (error instanceof BpfError && error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** What `open` returns, or undefined when the pin holds something else than a link (EINVAL) or is gone (ENOENT). */
export function unlessNotALink<T>(open: () => T): T | undefined {
  try {
    return open();
  } catch (error) {
    if (error instanceof BpfError && (error.code === 'EINVAL' || error.code === 'ENOENT')) return undefined;
    throw error;
  }
}

/** The program id in our clsact filter; undefined without one (also without a clsact qdisc, or the interface). */
export function filterProgram(filter: TcFilterId): number | undefined {
  return unlessNoFilter(() => queryTcFilter(filter));
}

/** Removes our clsact filter (only it); false when it was not there (also without a clsact qdisc, or the interface). */
export function detachFilter(filter: TcFilterId): boolean {
  return unlessNoFilter(() => detachTcFilter(filter)) ?? false;
}

function unlessNoFilter<T>(call: () => T): T | undefined {
  try {
    return call();
  } catch (error) {
    // EINVAL: "Parent Qdisc doesn't exists"; ENODEV: the interface is gone.
    if (error instanceof BpfError && (error.code === 'EINVAL' || error.code === 'ENODEV' || error.code === 'ENOENT')) return undefined;
    throw error;
  }
}
