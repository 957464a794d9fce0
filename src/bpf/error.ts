// The one error type of the libbpf addon: every failed libbpf call or syscall becomes a BpfError
// that names the object at fault, the call that failed, its errno as a code, and libbpf's log
// (the verifier's reasoning for a rejected program). Bad arguments are TypeError/RangeError instead.
import { constants } from 'node:os';

/** libbpf's own error codes (libbpf.h, enum libbpf_errno); strerror does not know them. */
const LIBBPF_CODES = [
  'LIBBPF_ERRNO__LIBELF',
  'LIBBPF_ERRNO__FORMAT',
  'LIBBPF_ERRNO__KVERSION',
  'LIBBPF_ERRNO__ENDIAN',
  'LIBBPF_ERRNO__INTERNAL',
  'LIBBPF_ERRNO__RELOC',
  'LIBBPF_ERRNO__LOAD',
  'LIBBPF_ERRNO__VERIFY',
  'LIBBPF_ERRNO__PROG2BIG',
  'LIBBPF_ERRNO__KVER',
  'LIBBPF_ERRNO__PROGTYPE',
  'LIBBPF_ERRNO__WRNGPID',
  'LIBBPF_ERRNO__INVSEQ',
  'LIBBPF_ERRNO__NLPARSE',
] as const;
const LIBBPF_ERRNO_START = 4000;

const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}
// Aliases sharing a number: use the names the kernel's own messages use.
ERRNO_NAMES.set(constants.errno.EAGAIN, 'EAGAIN');
ERRNO_NAMES.set(constants.errno.EOPNOTSUPP, 'EOPNOTSUPP');
// The kernel-internal "not supported" that bpf(2) leaks, e.g. for batch ops on a map type without them.
ERRNO_NAMES.set(524, 'ENOTSUPP');

/** 'EACCES' for 13, 'LIBBPF_ERRNO__FORMAT' for 4001, 'ERRNO_n' when unknown. */
export function errnoCode(errno: number): string {
  const libbpf = LIBBPF_CODES[errno - LIBBPF_ERRNO_START];
  if (libbpf !== undefined) return libbpf;
  return ERRNO_NAMES.get(errno) ?? `ERRNO_${errno}`;
}

/** What the addon reports about a failure. */
export interface BpfFailure {
  /** The object at fault: `object "x"`, `map "services"`, `pin "/sys/fs/bpf/x"`, … */
  readonly context: string;
  /** The libbpf function or syscall that failed, e.g. `bpf_object__load`. */
  readonly call: string;
  /** Positive errno, or one of libbpf's codes from 4000 on. */
  readonly errno: number;
  /** Human text: strerror, or the addon's own explanation. */
  readonly reason: string;
  /** What libbpf printed during the call (warnings and info; the verifier log on rejection). */
  readonly log: string;
}

export class BpfError extends Error {
  override readonly name = 'BpfError';
  readonly context: string;
  readonly call: string;
  readonly errno: number;
  readonly code: string;
  readonly log: string;

  constructor(failure: BpfFailure) {
    const code = errnoCode(failure.errno);
    super(`${failure.context}: ${failure.call}: ${failure.reason} (${code})${logSummary(failure.log)}`);
    this.context = failure.context;
    this.call = failure.call;
    this.errno = failure.errno;
    this.code = code;
    this.log = failure.log;
  }
}

/**
 * The log's gist for the message: the verifier's reason for a rejection (the line before its
 * instruction count summary), else libbpf's first line (e.g. "couldn't reuse pinned map …").
 */
function logSummary(log: string): string {
  const lines = log.split('\n');
  const summary = lines.findIndex((line) => line.startsWith('processed ') && line.includes(' insns'));
  const verdict = summary > 0 ? lines[summary - 1]?.trim() : undefined;
  if (verdict) return `; verifier: ${verdict}`;
  const first = lines[0]?.replace(/^libbpf: /, '').trim();
  return first ? `; libbpf: ${first}` : '';
}
