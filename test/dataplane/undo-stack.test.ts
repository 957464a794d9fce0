// The undo stack of multi-step starts (the tc NodePort attach, the eBPF service proxy's open): a
// failure half-way takes back what was done, last first, and reports the failure that caused it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UndoStack } from '../../src/dataplane/undo-stack.js';

test('a start that fails takes back its steps, last first, and rethrows its own error', async () => {
  const done: string[] = [];
  const failure = new Error('attach on eth1: ENODEV');
  await assert.rejects(
    UndoStack.run(async (undo) => {
      undo.push(() => done.push('detach eth0 ingress'));
      undo.push(async () => {
        await Promise.resolve();
        done.push('detach eth0 egress');
      });
      throw failure;
    }),
    (error: unknown) => error === failure,
  );
  assert.deepEqual(done, ['detach eth0 egress', 'detach eth0 ingress']);
});

test('a step that cannot be taken back does not stop the others, nor hide the first failure', async () => {
  const done: string[] = [];
  await assert.rejects(
    UndoStack.run((undo) => {
      undo.push(() => done.push('remove pins'));
      undo.push(() => {
        throw new Error('link already gone');
      });
      undo.push(() => Promise.reject(new Error('filter already gone')));
      throw new Error('mapping wl_slots: EPERM');
    }),
    /mapping wl_slots: EPERM/,
  );
  assert.deepEqual(done, ['remove pins']);
});

test('a start that succeeds keeps what it did and returns its result', async () => {
  const done: string[] = [];
  const result = await UndoStack.run((undo) => {
    undo.push(() => done.push('undone'));
    return 'attached';
  });
  assert.equal(result, 'attached');
  assert.deepEqual(done, []);
});

test('unwinding twice takes each step back once', async () => {
  const undo = new UndoStack();
  let undone = 0;
  undo.push(() => undone++);
  await undo.unwind();
  await undo.unwind();
  assert.equal(undone, 1);
});
