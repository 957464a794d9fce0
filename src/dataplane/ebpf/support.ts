// Whether this host can run the eBPF service data path, asked cheaply and without side effects:
// each kernel probe loads at most a trivial program, and the last step loads sock_lb.bpf.o itself
// (the verifier's word on every program and attach type) without attaching or pinning anything,
// on the thread pool.
import { existsSync } from 'node:fs';
import {
  BpfObject,
  bpfObjectPath,
  findBpffsMount,
  findCgroup2Mount,
  isCgroup2,
  probeBpf,
  probeBtf,
  probeHelper,
  probeMapType,
  probeProgramType,
  probeTcx,
} from '../../bpf/index.js';
import { errorLine } from '../../observability/first-line.js';
import { MAP_NAMES } from './codec.js';

export interface EbpfCheck {
  /** e.g. 'program type cgroup_sock_addr', 'helper get_netns_cookie'. */
  readonly name: string;
  readonly ok: boolean;
  /** What was found, or why not. */
  readonly detail?: string;
  /** false: reported, but the data path works without it (tcx: clsact filters instead). */
  readonly required: boolean;
}

export interface EbpfSupport {
  /** Every required check passed. */
  readonly usable: boolean;
  /** The first required check that failed, as one line. */
  readonly reason?: string;
  readonly checks: readonly EbpfCheck[];
}

// cgroup_sock and sk_storage: sock_release removes what a closed socket left (kernels that have
// set_retval, 5.18, have them too).
const PROGRAM_TYPES = ['cgroup_sock_addr', 'cgroup_sock', 'sched_cls'];
const MAP_TYPES = ['hash', 'lru_hash', 'array', 'sk_storage'];
const SOCK_ADDR_HELPERS = ['get_netns_cookie', 'get_socket_cookie', 'set_retval', 'get_prandom_u32', 'ktime_get_ns', 'sk_storage_get'];
/** The attach types sock_lb.bpf.o's programs are loaded with (their ELF sections). */
const ATTACH_TYPES =
  'cgroup_inet4_connect, cgroup_inet6_connect, cgroup_udp4_sendmsg, cgroup_udp6_sendmsg, cgroup_udp4_recvmsg, cgroup_udp6_recvmsg, cgroup_inet4_getpeername, cgroup_inet6_getpeername, cgroup_inet_sock_release';

async function check(name: string, required: boolean, probe: () => boolean | string | Promise<boolean | string>, failure = 'not available'): Promise<EbpfCheck> {
  try {
    const result = await probe();
    if (typeof result === 'string') return { name, ok: true, detail: result, required };
    return result ? { name, ok: true, required } : { name, ok: false, detail: failure, required };
  } catch (error) {
    return { name, ok: false, detail: errorLine(error), required };
  }
}

export interface EbpfProbeOptions {
  readonly objectPath?: string;
  /** The cgroup the agent was told to attach to (--cgroup-root); default: the cgroup v2 mount must exist. */
  readonly cgroupRoot?: string;
}

/** Probes the kernel and this process; stops at the first step later ones depend on (no syscall, no privilege). */
export async function probeEbpfSupport(options: EbpfProbeOptions = {}): Promise<EbpfSupport> {
  const checks: EbpfCheck[] = [];
  const bpf = probeBpf();
  checks.push({ name: 'bpf syscall', ok: bpf.syscall, required: true, ...(!bpf.syscall && { detail: bpf.reason ?? 'missing' }) });
  if (bpf.syscall) checks.push({ name: 'privilege to load programs (CAP_BPF, CAP_NET_ADMIN)', ok: bpf.privileged, required: true, ...(!bpf.privileged && { detail: bpf.reason ?? 'denied' }) });
  checks.push(await check('kernel BTF (/sys/kernel/btf/vmlinux)', true, probeBtf, 'missing: CO-RE programs cannot be relocated'));
  checks.push(cgroupCheck(options.cgroupRoot));
  const bpffs = findBpffsMount();
  // Not a failure: the agent mounts one where there is none.
  checks.push({ name: 'bpffs', ok: true, required: false, detail: bpffs === undefined ? 'not mounted; the agent mounts /sys/fs/bpf' : `mounted at ${bpffs}` });
  if (bpf.privileged) {
    for (const type of PROGRAM_TYPES) checks.push(await check(`program type ${type}`, true, () => probeProgramType(type)));
    for (const type of MAP_TYPES) checks.push(await check(`map type ${type}`, true, () => probeMapType(type)));
    for (const helper of SOCK_ADDR_HELPERS) checks.push(await check(`helper ${helper} (cgroup_sock_addr)`, true, () => probeHelper('cgroup_sock_addr', helper)));
    checks.push(await check('tcx links', false, () => (probeTcx() ? 'yes' : false), 'no: tc programs use clsact filters'));
    // Neither object needs the other (nothing is pinned): the kernel verifies both at once, off this thread.
    checks.push(
      ...(await Promise.all([
        check(`attach types ${ATTACH_TYPES}`, true, () => loadSockLb(options.objectPath)),
        check('ending UDP sockets of removed backends (iter/udp, bpf_sock_destroy)', false, loadSockTerm, 'no: such sockets stay until the application reconnects'),
      ])),
    );
  }
  const failed = checks.find((c) => c.required && !c.ok);
  return { usable: failed === undefined, ...(failed && { reason: `${failed.name}: ${failed.detail ?? 'failed'}` }), checks };
}

/**
 * A given cgroup root must itself be cgroup v2 (it may be a bind mount that /proc/mounts does not
 * list as cgroup2, as inside `ip netns exec`); without one, the mount the agent would default to.
 */
function cgroupCheck(cgroupRoot: string | undefined): EbpfCheck {
  const name = 'cgroup v2 mount';
  if (cgroupRoot !== undefined) {
    return isCgroup2(cgroupRoot) ? { name, ok: true, required: true, detail: cgroupRoot } : { name, ok: false, required: true, detail: `${cgroupRoot} is not a cgroup v2 directory` };
  }
  const cgroup2 = findCgroup2Mount();
  return { name, ok: cgroup2 !== undefined, required: true, detail: cgroup2 ?? 'no cgroup2 line in /proc/mounts' };
}

/** Loads the socket-termination object with its maps shrunk to one entry (the kernel's word on the kfunc). */
async function loadSockTerm(): Promise<string> {
  const object = BpfObject.open(bpfObjectPath('sock_term'));
  try {
    for (const name of [...Object.values(MAP_NAMES), 'wl_sock_term']) object.setMaxEntries(name, 1);
    await object.loadAsync();
    return 'yes';
  } finally {
    object.close();
  }
}

/** Loads the socket-LB object (nothing attached or pinned; its maps go with the object). */
async function loadSockLb(objectPath: string = bpfObjectPath('sock_lb')): Promise<string> {
  if (!existsSync(objectPath)) throw new Error(`${objectPath} is missing (npm run setup builds it)`);
  const object = BpfObject.open(objectPath);
  try {
    await object.loadAsync();
    return `${object.programs().length} programs of ${objectPath} pass the verifier`;
  } finally {
    object.close();
  }
}
