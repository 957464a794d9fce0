// The keys the socket-termination iterator looks up (bpf/include/wirelane_maps.h, wl_sock_term_key).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { termKeys } from '../../src/dataplane/ebpf/sock-term.js';
import { parseIp } from '../../src/model/ip.js';

test('a stale UDP flow becomes {frontend, backend, port, family}; a missing address is the zero wildcard; other protocols are skipped', () => {
  const keys = termKeys([
    { protocol: 'udp', family: 4, origDst: parseIp('10.96.0.15'), origDstPort: 53, replySrc: parseIp('10.1.0.7') },
    { protocol: 'udp', family: 6, origDstPort: 30053 },
    { protocol: 'tcp', family: 4, origDst: parseIp('10.96.0.16'), origDstPort: 80 },
  ]);
  assert.equal(keys.count, 2);
  const [first, second] = [keys.keyBytes().subarray(0, 36), keys.keyBytes().subarray(36, 72)];
  assert.deepEqual([...first.subarray(0, 16)], [10, 96, 0, 15, ...new Array(12).fill(0)]);
  assert.deepEqual([...first.subarray(16, 32)], [10, 1, 0, 7, ...new Array(12).fill(0)]);
  assert.deepEqual([first.readUInt16BE(32), first[34], first[35]], [53, 4, 0]);
  assert.deepEqual([...second.subarray(0, 32)], new Array(32).fill(0));
  assert.deepEqual([second.readUInt16BE(32), second[34]], [30053, 6]);
  assert.equal(termKeys([]).count, 0);
});
