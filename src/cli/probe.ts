// `wirelane probe`: what this kernel and process offer the service data paths, and the mode
// `--service-proxy auto` would run, with the reason for each step down (eBPF → iptables → userspace).
// The decision is the agent's own (decideServiceProxy), not a copy of it.
import { decideServiceProxy } from '../agent/service-proxy-choice.js';
import { type Command, UsageError } from './command.js';
import { stringFlag } from './flags.js';

export const probe: Command = {
  name: 'probe',
  summary: 'report the kernel features the service data paths need and the mode auto would choose',
  usage: 'wirelane probe [-o text|json]',
  help: `Flags:
  -o, --output text|json   text (default): one line per check; json: {"mode", "reasons", "ebpf": {"usable",
                           "reason", "checks": [{"name", "ok", "required", "detail"}]}, "iptables": {"usable", "reason"}}

Loads at most trivial programs and the socket-LB object itself; attaches and pins nothing. Run as
root to see what the agent would see.`,
  options: {
    output: { type: 'string', short: 'o', default: 'text' },
  },
  async run(values) {
    const output = stringFlag(values, 'output');
    if (output !== 'text' && output !== 'json') throw new UsageError(`-o: "${output}" is not text or json`);
    const decision = await decideServiceProxy();
    if (output === 'json') {
      const report = {
        mode: decision.mode,
        reasons: decision.reasons,
        ebpf: { usable: decision.ebpf.usable, ...(decision.ebpf.reason !== undefined && { reason: decision.ebpf.reason }), checks: decision.ebpf.checks },
        iptables: { usable: decision.iptablesReason === undefined, ...(decision.iptablesReason !== undefined && { reason: decision.iptablesReason }) },
      };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    const lines = decision.ebpf.checks.map((c) => `${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'no  '} ${c.name}${c.detail === undefined ? '' : `: ${c.detail}`}`);
    lines.push(`${decision.iptablesReason === undefined ? 'ok  ' : 'FAIL'} iptables nat table${decision.iptablesReason === undefined ? '' : `: ${decision.iptablesReason}`}`);
    lines.push('', `mode: ${decision.mode}`, ...decision.reasons.map((r) => `  stepped down: ${r}`));
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
