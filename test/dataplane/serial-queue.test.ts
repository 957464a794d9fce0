import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SerialQueue } from '../../src/dataplane/serial-queue.js';

/** A promise the test settles by hand, to hold work in flight. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

test('work queued while other work runs starts only after it, in call order', async () => {
  const queue = new SerialQueue();
  const events: string[] = [];
  const first = gate();
  const a = queue.run(async () => {
    events.push('a starts');
    await first.promise;
    events.push('a ends');
    return 'a';
  });
  const b = queue.run(async () => {
    events.push('b starts');
    return 'b';
  });
  const c = queue.run(async () => {
    events.push('c starts');
    return 'c';
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(events, ['a starts'], 'b and c wait while a is in flight');
  first.open();
  assert.deepEqual(await Promise.all([a, b, c]), ['a', 'b', 'c']);
  assert.deepEqual(events, ['a starts', 'a ends', 'b starts', 'c starts']);
});

test('a failure reaches its caller and the work queued after it still runs', async () => {
  const queue = new SerialQueue();
  const failed = queue.run(async () => {
    throw new Error('iptables-restore: exit code 1');
  });
  const next = queue.run(async () => 'applied');
  await assert.rejects(failed, { message: 'iptables-restore: exit code 1' });
  assert.equal(await next, 'applied');
});
