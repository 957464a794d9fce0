import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReconcileLoop } from '../../src/agent/reconcile-loop.js';
import { until } from '../support/wait.js';

const HOUR = 3_600_000;

// Timers fire in order of their due time: a 0 ms debounce set before a sleep(20) has fired once it
// returns. That ordering, not a duration, is what these tests rely on.

test('events closer together than the debounce share one reconcile', async () => {
  let runs = 0;
  const loop = new ReconcileLoop(async () => void runs++, HOUR, { debounceMs: 10 });
  for (let i = 0; i < 5; i++) loop.trigger();
  await sleep(30);
  await loop.stop();
  assert.equal(runs, 1);
});

test('events during a reconcile coalesce into exactly one more run', async () => {
  let runs = 0;
  let finished = 0;
  let release = (): void => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const loop = new ReconcileLoop(
    async () => {
      runs++;
      if (runs === 1) await gate;
      finished++;
    },
    HOUR,
    { debounceMs: 0 },
  );
  loop.trigger();
  await until('the first reconcile to start', () => runs === 1);
  for (let i = 0; i < 10; i++) {
    loop.trigger();
    await sleep(5); // each debounce fires while the first reconcile still runs
  }
  assert.equal(runs, 1, 'nothing runs alongside a reconcile in progress');
  release();
  await until('the coalesced reconcile to finish', () => finished === 2);
  await sleep(20);
  await loop.stop();
  assert.equal(runs, 2);
});

test('stop waits for the reconcile in progress and starts no other, even with events pending', async () => {
  let runs = 0;
  let finished = false;
  let release = (): void => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const loop = new ReconcileLoop(
    async () => {
      runs++;
      await gate;
      finished = true;
    },
    HOUR,
    { debounceMs: 0 },
  );
  loop.trigger();
  await until('the reconcile to start', () => runs === 1);
  loop.trigger();
  await sleep(20); // the event is pending now
  const stopped = loop.stop().then(() => finished);
  release();
  assert.equal(await stopped, true, 'stop resolved only after the reconcile finished');
  await sleep(20);
  assert.equal(runs, 1);
});

test('stop before the debounce fires means no reconcile; a trigger after stop is ignored', async () => {
  let runs = 0;
  let due = 0;
  const loop = new ReconcileLoop(async () => void runs++, HOUR, { debounceMs: 10, onDue: () => due++ });
  loop.trigger();
  await loop.stop();
  loop.trigger();
  await sleep(30);
  assert.equal(runs, 0);
  assert.equal(due, 1);
});

test('a reconcile that throws does not end the loop', async () => {
  let runs = 0;
  const loop = new ReconcileLoop(
    async () => {
      runs++;
      throw new Error('step failed');
    },
    HOUR,
    { debounceMs: 0 },
  );
  loop.trigger();
  await until('the first reconcile', () => runs === 1);
  loop.trigger();
  await until('the second reconcile', () => runs === 2);
  await loop.stop();
});

test('the resync timer and events both report a sync as due', async () => {
  let due = 0;
  let runs = 0;
  const loop = new ReconcileLoop(async () => void runs++, 5, { debounceMs: 0, onDue: () => due++ });
  loop.start();
  await until('three resyncs', () => runs >= 3);
  await loop.stop();
  assert.ok(due >= runs, `${due} due for ${runs} runs`);
});

test('back-to-back reconciles run in a loop: the call stack does not grow over 300 runs', async () => {
  const depths: number[] = [];
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = Infinity;
  try {
    const loop: ReconcileLoop = new ReconcileLoop(
      async () => {
        // V8 appends the chain of awaiting async functions: a recursive loop adds one per run.
        depths.push((new Error().stack ?? '').split('\n').length);
        if (depths.length < 300) loop.trigger(); // an event arrives while this run is in progress
        await sleep(2);
      },
      HOUR,
      { debounceMs: 0 },
    );
    loop.trigger();
    await until('300 reconciles', () => depths.length === 300, 60_000);
    await loop.stop();
  } finally {
    Error.stackTraceLimit = limit;
  }
  // A run may start from the loop or, when the machine is slow, from the trigger's timer: the
  // depth varies by a frame or two either way, but it must not grow with the number of runs.
  const deepest = (runs: number[]) => Math.max(...runs);
  assert.ok(deepest(depths.slice(250)) <= deepest(depths.slice(0, 50)), `stack depth over the first 50 runs up to ${deepest(depths.slice(0, 50))}, over the last 50 up to ${deepest(depths.slice(250))}`);
});
