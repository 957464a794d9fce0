// Child of ebpf-probe.test.ts: the decision `wirelane probe` prints, made as user nobody. What it
// needs from the checkout is loaded while still root (a checkout under /root is not readable by
// nobody, and the point is the kernel's answer, not the file system's); then it drops root.
import { decideServiceProxy } from '../../src/agent/service-proxy-choice.js';
import { bpfAddon } from '../../src/bpf/index.js';

bpfAddon();
process.setgroups?.([]);
process.setgid?.(65534);
process.setuid?.(65534);

const decision = await decideServiceProxy();
const report: Record<string, unknown> = { uid: process.getuid?.(), mode: decision.mode, reasons: decision.reasons };
for (const [mode, p] of decision.probes) report[mode] = { usable: p.usable, ...(p.reason !== undefined && { reason: p.reason }) };
process.stdout.write(`${JSON.stringify(report)}\n`);
