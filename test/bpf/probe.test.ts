import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { test } from 'node:test';
import {
  findBpffsMount,
  findCgroup2Mount,
  parseMounts,
  probeBpf,
  probeBtf,
  probeHelper,
  probeMapType,
  probeProgramType,
  probeTcx,
  typeNames,
} from '../../src/bpf/index.js';
import { bpfSkip } from './harness.js';

const skip = await bpfSkip('BPF probe tests');

test('as root on this kernel: bpf, BTF, the program and map types and helpers wirelane uses', { skip }, () => {
  assert.deepEqual(probeBpf(), { syscall: true, privileged: true });
  assert.equal(probeBtf(), true);
  for (const type of ['cgroup_sock_addr', 'sched_cls', 'socket_filter']) assert.equal(probeProgramType(type), true, type);
  for (const type of ['hash', 'lru_hash', 'array', 'lpm_trie', 'percpu_array']) assert.equal(probeMapType(type), true, type);
  for (const helper of ['get_netns_cookie', 'get_socket_cookie', 'set_retval']) {
    assert.equal(probeHelper('cgroup_sock_addr', helper), true, helper);
  }
  assert.equal(probeHelper('sched_cls', 'fib_lookup'), true);
  // A helper that socket-address programs may not call.
  assert.equal(probeHelper('cgroup_sock_addr', 'skb_store_bytes'), false);
  assert.equal(probeHelper('sched_cls', 5000), false); // no such helper
});

test('tcx is found exactly on kernels from 6.6', { skip }, () => {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  assert.equal(probeTcx(), major > 6 || (major === 6 && minor >= 6));
});

test('types are named as libbpf names them, and an unknown name is a TypeError', { skip }, () => {
  assert.equal(typeNames('program')[18], 'cgroup_sock_addr');
  assert.equal(typeNames('map')[9], 'lru_hash');
  assert.equal(typeNames('helper')[1], 'map_lookup_elem');
  assert.equal(typeNames('attach')[10], 'cgroup_inet4_connect');
  assert.throws(() => probeProgramType('no_such_type'), { name: 'TypeError', message: /unknown program type "no_such_type"/ });
  assert.throws(() => probeHelper('sched_cls', 'no_such_helper'), TypeError);
  assert.throws(() => typeNames('colours' as 'map'), TypeError);
});

test('mounts are read from /proc/mounts, with escaped paths', () => {
  const mounts = parseMounts(
    ['cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0', 'bpf /sys/fs/bpf bpf rw,mode=700 0 0', 'x /mnt/with\\040space ext4 ro 0 0', ''].join('\n'),
  );
  assert.deepEqual(
    mounts.map((m) => [m.target, m.fstype]),
    [
      ['/sys/fs/cgroup/unified', 'cgroup2'],
      ['/sys/fs/bpf', 'bpf'],
      ['/mnt/with space', 'ext4'],
    ],
  );
  assert.deepEqual(mounts[1]?.options, ['rw', 'mode=700']);
  const here = parseMounts(readFileSync('/proc/mounts', 'utf8'));
  assert.equal(findCgroup2Mount(), here.find((m) => m.fstype === 'cgroup2')?.target);
  assert.equal(findBpffsMount(), here.find((m) => m.fstype === 'bpf')?.target);
});
