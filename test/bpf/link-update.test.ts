// Replacing the program of a live link (bpf_link_update), and the kernel's description of loaded
// programs that tells an upgrade whether a running program differs from the one it loaded.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { BpfError, BpfObject, bpfFixturePath, openMapById, programInfoById, type BpfLink, type BpfMap } from '../../src/bpf/index.js';
import { bpfSkip, cgroupDir, connectFrom, listen, onCleanup, u32 } from './harness.js';

const skip = await bpfSkip('BPF link update tests');

/** The fixture loaded with `answer` (its connect4 program records it), and its counters. */
function loaded(t: TestContext, answer: number): { obj: BpfObject; counters: BpfMap } {
  const obj = BpfObject.open(bpfFixturePath('addon_fixture'));
  onCleanup(t, () => obj.close());
  obj.setConstant('answer', answer);
  obj.load();
  const counters = obj.map('counters');
  onCleanup(t, () => counters.close());
  return { obj, counters };
}

function attached(t: TestContext, obj: BpfObject, cgroup: string): BpfLink {
  const link = obj.attachCgroup('count_connect4', cgroup);
  onCleanup(t, () => link.destroy());
  return link;
}

const slot = (map: BpfMap, n: number): bigint => map.lookup(u32(n))?.readBigUInt64LE(0) ?? -1n;

const bpfFailure = (code: string, call: string, message?: RegExp) => (e: unknown) =>
  e instanceof BpfError && e.code === code && e.call === call && (message === undefined || message.test(e.message));

test('a link gets another program in place: the same link, and connects run the new program', { skip }, async (t) => {
  const cgroup = cgroupDir(t);
  const port = await listen(t);
  const old = loaded(t, 1);
  const next = loaded(t, 2);
  const link = attached(t, old.obj, cgroup);
  const before = link.info();
  await connectFrom(t, cgroup, port);
  assert.deepEqual([slot(old.counters, 0), slot(next.counters, 0)], [1n, 0n]);

  link.update(next.obj.programFd('count_connect4'), { expectedProgramId: before.progId });
  const after = link.info();
  assert.equal(after.id, before.id, 'the same link');
  assert.equal(after.progId, next.obj.programInfo('count_connect4').id);
  await connectFrom(t, cgroup, port);
  assert.deepEqual([slot(old.counters, 0), slot(next.counters, 0)], [1n, 1n], 'only the new program counted');
  assert.equal(slot(next.counters, 1), 2n, 'with its own constant');

  // Without an expected program the swap is unconditional (back to the old one).
  link.update(old.obj.programFd('count_connect4'));
  assert.equal(link.info().progId, before.progId);
});

test('the kernel describes a loaded program: its tag follows the code, not constants or maps', { skip }, (t) => {
  const a = loaded(t, 1);
  const b = loaded(t, 2);
  const first = a.obj.programInfo('count_connect4');
  const second = b.obj.programInfo('count_connect4');
  assert.notEqual(first.id, second.id);
  assert.match(first.tag, /^[0-9a-f]{16}$/);
  assert.equal(first.tag, second.tag, 'the same instructions over other maps, other constants');
  assert.notEqual(first.tag, a.obj.programInfo('count_packets').tag);
  assert.equal(first.typeName, 'cgroup_sock_addr');
  assert.deepEqual(programInfoById(first.id), first);
  assert.ok(first.mapIds.includes(a.counters.id), 'its maps are listed');
  const names = first.mapIds.map((id) => {
    const map = openMapById(id);
    map.close();
    return map.name;
  });
  assert.ok(names.includes('counters') && names.some((n) => n.endsWith('.rodata')), names.join(', '));
  assert.throws(() => programInfoById(0xfffffff0), bpfFailure('ENOENT', 'bpf_prog_get_fd_by_id', /program id 4294967280/));
  assert.throws(() => openMapById(0xfffffff0), bpfFailure('ENOENT', 'bpf_map_get_fd_by_id'));
  // Bad ids are argument errors naming the argument, never a crash.
  assert.throws(() => programInfoById(-1), { name: 'RangeError', message: /program id must be an integer/ });
  assert.throws(() => openMapById('7' as unknown as number), { name: 'TypeError', message: 'map id must be a number' });
  assert.throws(() => a.obj.programFd('no_such_program'), bpfFailure('ENOENT', 'bpf_obj_get_info_by_fd', /no program named "no_such_program"/));
});

test('a link update refuses a bad fd, a program of the wrong type, and a link that moved on', { skip }, (t) => {
  const cgroup = cgroupDir(t);
  const old = loaded(t, 1);
  const next = loaded(t, 2);
  const link = attached(t, old.obj, cgroup);
  const progId = link.info().progId;

  assert.throws(() => link.update(1_000_000), bpfFailure('EBADF', 'bpf_link_update'), 'an fd that is not open');
  const mapFd = old.obj.maps().find((m) => m.name === 'counters')?.fd;
  assert.ok(mapFd !== undefined);
  assert.throws(() => link.update(mapFd), bpfFailure('EINVAL', 'bpf_link_update'), 'a map, not a program');
  assert.throws(() => link.update(next.obj.programFd('count_packets')), bpfFailure('EINVAL', 'bpf_link_update'), 'a tc program on a cgroup link');
  // The swap names the program it replaces: another one there means someone else moved the link.
  assert.throws(
    () => link.update(next.obj.programFd('count_connect4'), { expectedProgramId: next.obj.programInfo('count_packets').id }),
    bpfFailure('EPERM', 'bpf_link_update'),
  );
  assert.throws(() => link.update(next.obj.programFd('count_connect4'), { expectedProgramId: 0xfffffff0 }), bpfFailure('ENOENT', 'bpf_prog_get_fd_by_id'));
  assert.throws(() => link.update(-1), RangeError);
  assert.throws(() => link.update(1.5), RangeError);
  assert.throws(() => link.update('3' as unknown as number), TypeError);
  assert.equal(link.info().progId, progId, 'every refused update left the program running');

  link.destroy();
  assert.throws(() => link.update(next.obj.programFd('count_connect4')), bpfFailure('EBADF', 'bpf_link_update', /it is closed/));
});
