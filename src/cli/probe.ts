// `wirelane probe`: what this kernel and process offer the service data paths, and the mode
// `--service-proxy auto` would run, with the reason for each step down (eBPF → iptables → userspace).
// The decisions are the agent's own (decideServiceProxy, autoDeclines), not copies of them.
import { SERVICE_PROXY_CHOICES } from '../agent/config.js';
import { autoDeclines } from '../agent/fast-path-policy.js';
import { decideServiceProxy } from '../agent/service-proxy-choice.js';
import { probeFastPathSupport } from '../dataplane/ebpf/fast-path-support.js';
import { type Command, UsageError } from './command.js';
import { choiceFlag, stringFlag, switchFlag } from './flags.js';

export const probe: Command = {
  name: 'probe',
  summary: 'report the kernel features the service data paths and the fast path need, and what auto would choose',
  usage: 'wirelane probe [-o text|json] [--cgroup-root PATH] [--cni=true|false] [--service-proxy MODE]',
  help: `Flags:
  -o, --output text|json   text (default): one line per check; json: {"mode", "reasons", and per mode
                           ("ebpf", "iptables", "userspace") and "fastPath" {"usable", "reason",
                           "checks": [{"name", "ok", "required", "detail"}]}; "fastPath" also has
                           "auto" ("on" or "off") and "autoReason": what --fast-path auto would do
                           with the flags below}
  --cgroup-root PATH       the agent's --cgroup-root: check that directory instead of the cgroup v2 mount
  --cni=true|false         the agent's --cni (default true, as in the DaemonSet): auto runs the fast
                           path only over wirelane's own CNI network
  --service-proxy MODE     the agent's --service-proxy (default auto): off leaves the fast path off

Loads at most trivial programs and the socket-LB object itself; attaches and pins nothing. Run as
root to see what the agent would see.`,
  options: {
    output: { type: 'string', short: 'o', default: 'text' },
    'cgroup-root': { type: 'string' },
    cni: { type: 'string' },
    'service-proxy': { type: 'string', default: 'auto' },
  },
  switches: ['cni'],
  async run(values) {
    const output = stringFlag(values, 'output');
    if (output !== 'text' && output !== 'json') throw new UsageError(`-o: "${output}" is not text or json`);
    const cgroupRoot = stringFlag(values, 'cgroup-root');
    const decision = await decideServiceProxy(cgroupRoot === undefined ? {} : { cgroupRoot });
    const serviceProxy = choiceFlag('service-proxy', stringFlag(values, 'service-proxy') ?? 'auto', SERVICE_PROXY_CHOICES);
    const fastPath = probeFastPathSupport();
    // The agent's order (fast-path-choice.ts): the flags first, then the kernel.
    const autoReason = autoDeclines({ serviceProxy, cni: switchFlag(values, 'cni', true) }) ?? fastPath.reason;
    const auto = autoReason === undefined ? 'on' : 'off';
    if (output === 'json') {
      const report: Record<string, unknown> = { mode: decision.mode, reasons: decision.reasons };
      for (const [mode, p] of decision.probes) report[mode] = { usable: p.usable, ...(p.reason !== undefined && { reason: p.reason }), checks: p.checks };
      report['fastPath'] = { usable: fastPath.usable, ...(fastPath.reason !== undefined && { reason: fastPath.reason }), checks: fastPath.checks, auto, ...(autoReason !== undefined && { autoReason }) };
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return 0;
    }
    const lines = [...decision.probes.values(), fastPath]
      .flatMap((p) => p.checks)
      .map((c) => `${c.ok ? 'ok  ' : c.required ? 'FAIL' : 'no  '} ${c.name}${c.detail === undefined ? '' : `: ${c.detail}`}`);
    lines.push('', `mode: ${decision.mode}`, ...decision.reasons.map((r) => `  stepped down: ${r}`));
    lines.push(`fast path (--fast-path auto): ${autoReason === undefined ? 'on' : `off: ${autoReason}`}`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  },
};
