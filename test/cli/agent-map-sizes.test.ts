// The eBPF map size flags of `wirelane agent`: defaults, values, and what is refused.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EBPF_MAP_SIZES } from '../../src/agent/service-proxy-modes.js';
import { UsageError } from '../../src/cli/command.js';
import { agent, parseAgentConfig } from '../../src/cli/agent.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const parse = (...args: string[]) => parseAgentConfig(parseArgs({ args: ['--source', 'file:/dev/null', ...args], options: agent.options, strict: true }).values);

test('map sizes default to EBPF_MAP_SIZES and follow their flags', () => {
  assert.deepEqual(parse().ebpfMapSizes, EBPF_MAP_SIZES);
  assert.deepEqual(
    parse('--nodeport-flows', '262144', '--nodeport-pending-flows', '4096', '--sock-lb-entries', '131072', '--affinity-entries', '2048', '--service-entries', '40000', '--backend-entries', '300001').ebpfMapSizes,
    { nodePortFlows: 262144, nodePortPendingFlows: 4096, sockLbEntries: 131072, affinityEntries: 2048, serviceEntries: 40000, backendEntries: 300001 },
  );
});

test('the service tables keep the sizes of the BPF header by default (pins of an earlier agent are kept)', () => {
  const header = readFileSync(join(root, 'bpf', 'include', 'wirelane_maps.h'), 'utf8');
  const define = (name: string) => Number(new RegExp(`#define ${name} (\\d+)`).exec(header)?.[1]);
  assert.equal(EBPF_MAP_SIZES.serviceEntries, define('WL_SERVICES_MAX'));
  assert.equal(EBPF_MAP_SIZES.backendEntries, define('WL_BACKENDS_MAX') - 1, 'id 0 of wl_backends means none');
});

test('a size that is not a whole number within 1024-16777216 is a usage error naming the flag', () => {
  for (const [flag, value] of [['--nodeport-flows', '100'], ['--sock-lb-entries', 'many'], ['--affinity-entries', '99999999'], ['--nodeport-pending-flows', '1.5'], ['--service-entries', '0'], ['--backend-entries', '2e5']] as const) {
    assert.throws(() => parse(flag, value), (e: unknown) => e instanceof UsageError && e.message.includes(flag.slice(2)), `${flag} ${value}`);
  }
});

test('the help names every size flag with its default', () => {
  for (const [flag, value] of [['nodeport-flows', EBPF_MAP_SIZES.nodePortFlows], ['nodeport-pending-flows', EBPF_MAP_SIZES.nodePortPendingFlows], ['sock-lb-entries', EBPF_MAP_SIZES.sockLbEntries], ['affinity-entries', EBPF_MAP_SIZES.affinityEntries], ['service-entries', EBPF_MAP_SIZES.serviceEntries], ['backend-entries', EBPF_MAP_SIZES.backendEntries]] as const) {
    assert.match(agent.help ?? '', new RegExp(`--${flag} N[^]*default ${value}`));
  }
});
