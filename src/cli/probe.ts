// `wirelane probe`: what this kernel and process offer the service data paths, and the mode
// `--service-proxy auto` would run, with the reason for each step down (eBPF → iptables → userspace).
// The decision is the agent's own (decideServiceProxy), not a copy of it.
import { decideServiceProxy } from '../agent/service-proxy-choice.js';
import { probeFastPathSupport } from '../dataplane/ebpf/fast-path-support.js';
import { type Command, UsageError } from './command.js';
import { stringFlag } from './flags.js';

export const probe: Command = {
  name: 'probe',
  summary: 'report the kernel features the service data paths and the fast path need, and what auto would choose',
  usage: 'wirelane probe [-o text|json] [--cgroup-root PATH]',
  help: `Flags:
  -o, --output text|json   text (default): one line per check; json: {"mode", "reasons", and per mode
                           ("ebpf", "iptables", "userspace") and "fastPath" {"usable", "reason",
                           "checks": [{"name", "ok", "required", "detail"}]}}
  --cgroup-root PATH       the agent's --cgroup-root: check that directory instead of the cgroup v2 mount

Loads at most trivial programs and the socket-LB object itself; attaches and pins nothing. Run as
root to see what the agent would see.`,
  options: {
    output: { type: 'string', short: 'o', default: 'text' },
    'cgroup-root': { type: 'string' },
  },
  async run(values) {
    const output = stringFlag(values, 'output');
    if (output !== 'text' && output !== 'json') throw new UsageError(`-o: "${output}" is not text or json`);
    const cgroupRoot = stringFlag(values, 'cgroup-root');
    const decision = await decideServiceProxy(cgroupRoot === undefined ? {} : { cgroupRoot });
    const fastPath = probeFastPathSupport();
    if (output === 'json') {
      const report: Record<string, unknown> = { mode: decision.mode, reasons: decision.reasons };
      for (const [mode, p] of decision.probes) report[mode] = { usable: p.usable, ...(p.reason !== undefined && { reason: p.reason }), checks: p.checks };
      report['fastPath'] = { usable: fastPath.usable, ...(fastPath.reason !== undefined && { reason: fastPath.reason }), checks: fastPath.checks };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    const lines = [...decision.probes.values(), fastPath]
      .flatMap((p) => p.checks)
      .map((c) => `${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'no  '} ${c.name}${c.detail === undefined ? '' : `: ${c.detail}`}`);
    lines.push('', `mode: ${decision.mode}`, ...decision.reasons.map((r) => `  stepped down: ${r}`));
    lines.push(`fast path (--fast-path auto): ${fastPath.usable ? 'on' : `off: ${fastPath.reason ?? 'unavailable'}`}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
