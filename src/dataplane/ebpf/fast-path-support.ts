// Whether this host can run the fast path, asked without side effects: the bpf syscall and the
// privilege to use it, then fastpath.bpf.o loaded (nothing attached or pinned): the verifier's word
// on bpf_redirect_peer, bpf_redirect_neigh, bpf_fib_lookup and the conntrack kfuncs
// (bpf_skb_ct_lookup: a kernel without nf_conntrack's BTF cannot keep translated flows on the stack).
import { existsSync } from 'node:fs';
import { BpfObject, bpfObjectPath, probeBpf, probeBtf, probeTcx } from '../../bpf/index.js';
import { errorLine } from '../../observability/first-line.js';
import type { EbpfCheck, EbpfSupport } from './support.js';

/**
 * `load: false` leaves out loading fastpath.bpf.o, for a caller whose own load (FastPathDatapath.load)
 * gives the verifier's word: the object through the verifier once at start, not twice.
 */
export function probeFastPathSupport(objectPath: string = bpfObjectPath('fastpath'), options: { readonly load?: boolean } = {}): EbpfSupport {
  const checks: EbpfCheck[] = [];
  const bpf = probeBpf();
  const privileged = bpf.syscall && bpf.privileged;
  checks.push({ name: 'fast path: bpf syscall and privilege (CAP_BPF, CAP_NET_ADMIN)', ok: privileged, required: true, ...(!privileged && { detail: bpf.reason ?? 'denied' }) });
  const btf = probeBtf();
  checks.push({ name: 'fast path: kernel BTF', ok: btf, required: true, ...(!btf && { detail: 'missing: CO-RE programs and kfuncs cannot be resolved' }) });
  if (privileged && btf) {
    if (options.load !== false) checks.push(loadCheck(objectPath));
    const tcx = probeTcx();
    checks.push({ name: 'fast path: tcx links', ok: tcx, required: false, detail: tcx ? 'yes' : 'no: clsact filters instead' });
  }
  const failed = checks.find((c) => c.required && !c.ok);
  return { usable: failed === undefined, ...(failed && { reason: `${failed.name}: ${failed.detail ?? 'failed'}` }), checks };
}

function loadCheck(objectPath: string): EbpfCheck {
  const name = 'fast path: programs (redirect_peer, redirect_neigh, fib_lookup, bpf_skb_ct_lookup) pass the verifier';
  if (!existsSync(objectPath)) return { name, ok: false, required: true, detail: `${objectPath} is missing (npm run setup builds it)` };
  const object = BpfObject.open(objectPath);
  try {
    object.load();
    return { name, ok: true, required: true, detail: `${object.programs().length} programs` };
  } catch (error) {
    return { name, ok: false, required: true, detail: errorLine(error) };
  } finally {
    object.close();
  }
}
