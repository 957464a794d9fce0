// --fast-path of `wirelane agent`: auto by default, on and off as given, anything else refused, on
// refused where the fast path cannot serve; where auto turns it on; and the fast path's map key as
// bpf/include/wirelane_fastpath.h lays it out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs } from 'node:util';
import { UsageError } from '../../src/cli/command.js';
import { agent, parseAgentConfig } from '../../src/cli/agent.js';
import { autoDeclines } from '../../src/agent/fast-path-policy.js';
import { cidrKey } from '../../src/dataplane/ebpf/fast-path.js';
import { parseCidr } from '../../src/model/ip.js';

const parse = (...args: string[]) => parseAgentConfig(parseArgs({ args: ['--source', 'file:/dev/null', ...args], options: agent.options, strict: true }).values);

test('--fast-path is auto unless given on or off', () => {
  assert.equal(parse().fastPath, 'auto');
  assert.equal(parse('--fast-path', 'on').fastPath, 'on');
  assert.equal(parse('--fast-path', 'off').fastPath, 'off');
});

test('--fast-path of another value is a usage error naming the flag', () => {
  assert.throws(() => parse('--fast-path', 'yes'), (e: unknown) => e instanceof UsageError && e.message.includes('fast-path'));
});

test('a pod CIDR key: prefix length past the family bits, family, padding, the network address', () => {
  assert.equal(cidrKey(parseCidr('10.244.1.7/24')).toString('hex'), `${'38000000'}04000000${'0af40100'}${'00'.repeat(12)}`);
  assert.equal(cidrKey(parseCidr('fd00:10:244:1::/64')).toString('hex'), `${'60000000'}06000000fd000010024400010000000000000000`);
});

test('--fast-path on beside another service proxy (--service-proxy off) is refused with one error naming both flags', () => {
  assert.throws(
    () => parse('--fast-path', 'on', '--service-proxy', 'off'),
    (e: unknown) => e instanceof UsageError && /^--fast-path on: --service-proxy off: .*; use --fast-path auto or off$/.test(e.message),
  );
  for (const mode of ['auto', 'ebpf', 'iptables', 'userspace']) assert.equal(parse('--fast-path', 'on', '--service-proxy', mode).fastPath, 'on', mode);
  assert.equal(parse('--fast-path', 'auto', '--service-proxy', 'off').fastPath, 'auto', 'auto decides at start, without an error');
});

test('auto turns the fast path on only where it is proven: CNI mode and one of wirelane\'s service proxy modes', () => {
  for (const serviceProxy of ['auto', 'ebpf', 'iptables', 'userspace'] as const) assert.equal(autoDeclines({ serviceProxy, cni: true }), undefined, serviceProxy);
  assert.match(autoDeclines({ serviceProxy: 'off', cni: true }) ?? '', /^--service-proxy off: /);
  assert.match(autoDeclines({ serviceProxy: 'ebpf', cni: false }) ?? '', /^--cni=false: /);
  // The CLI's file mode runs without CNI mode unless asked (the DaemonSet's kubernetes source with it).
  assert.match(autoDeclines(parse()) ?? '', /^--cni=false: /);
  assert.equal(autoDeclines(parse('--cni=true')), undefined);
});
