// The eBPF map size flags of `wirelane agent`: defaults, values, and what is refused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs } from 'node:util';
import { EBPF_MAP_SIZES } from '../../src/agent/service-proxy-modes.js';
import { UsageError } from '../../src/cli/command.js';
import { agent, parseAgentConfig } from '../../src/cli/agent.js';

const parse = (...args: string[]) => parseAgentConfig(parseArgs({ args: ['--source', 'file:/dev/null', ...args], options: agent.options, strict: true }).values);

test('map sizes default to EBPF_MAP_SIZES and follow their flags', () => {
  assert.deepEqual(parse().ebpfMapSizes, EBPF_MAP_SIZES);
  assert.deepEqual(parse('--nodeport-flows', '262144', '--nodeport-pending-flows', '4096', '--sock-lb-entries', '131072', '--affinity-entries', '2048').ebpfMapSizes, {
    nodePortFlows: 262144,
    nodePortPendingFlows: 4096,
    sockLbEntries: 131072,
    affinityEntries: 2048,
  });
});

test('a size that is not a whole number within 1024-16777216 is a usage error naming the flag', () => {
  for (const [flag, value] of [['--nodeport-flows', '100'], ['--sock-lb-entries', 'many'], ['--affinity-entries', '99999999'], ['--nodeport-pending-flows', '1.5']] as const) {
    assert.throws(() => parse(flag, value), (e: unknown) => e instanceof UsageError && e.message.includes(flag.slice(2)), `${flag} ${value}`);
  }
});

test('the help names every size flag with its default', () => {
  for (const [flag, value] of [['nodeport-flows', EBPF_MAP_SIZES.nodePortFlows], ['nodeport-pending-flows', EBPF_MAP_SIZES.nodePortPendingFlows], ['sock-lb-entries', EBPF_MAP_SIZES.sockLbEntries], ['affinity-entries', EBPF_MAP_SIZES.affinityEntries]] as const) {
    assert.match(agent.help ?? '', new RegExp(`--${flag} N[^]*default ${value}`));
  }
});
