// Which slice changes a successful sync programs, for wirelane_network_programming_duration_seconds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ProgrammedTriggers, pendingTriggers, programmingLatencies } from '../../src/services/programming-latency.js';

const START = 1_000_000;
const s = (name: string, triggeredAt?: number) => ({ namespace: 'default', name, ...(triggeredAt !== undefined && { triggeredAt }) });

describe('pendingTriggers', () => {
  test('the first snapshot: slices changed before the agent started are not its latency', () => {
    const r = pendingTriggers(new Map(), [s('a', START - 5000), s('b', START + 200), s('c')], START);
    assert.deepEqual(r.pending, [START + 200]);
    assert.deepEqual([...r.programmed], [['default/a', START - 5000], ['default/b', START + 200]]);
  });

  test('only a slice whose trigger time moved is pending; a deleted slice is forgotten', () => {
    const programmed: ProgrammedTriggers = new Map([['default/a', START + 1], ['default/b', START + 2], ['default/gone', START + 3]]);
    const r = pendingTriggers(programmed, [s('a', START + 1), s('b', START + 50), s('new', START + 60)], START);
    assert.deepEqual(r.pending, [START + 50, START + 60]);
    assert.deepEqual([...r.programmed.keys()], ['default/a', 'default/b', 'default/new']);
  });

  test('after a failed sync (the old map kept), the change is still pending, from its first trigger time', () => {
    const programmed: ProgrammedTriggers = new Map([['default/a', START + 1]]);
    const first = pendingTriggers(programmed, [s('a', START + 100)], START);
    // the apply failed: the caller keeps `programmed`
    const retry = pendingTriggers(programmed, [s('a', START + 100)], START);
    assert.deepEqual(first.pending, [START + 100]);
    assert.deepEqual(retry.pending, [START + 100]);
    // it succeeded: nothing is pending any more
    assert.deepEqual(pendingTriggers(retry.programmed, [s('a', START + 100)], START).pending, []);
  });

  test('namespaces keep slices of one name apart', () => {
    const r = pendingTriggers(new Map([['default/a', START + 1]]), [{ namespace: 'shop', name: 'a', triggeredAt: START + 1 }], START);
    assert.deepEqual(r.pending, [START + 1]);
  });
});

describe('programmingLatencies', () => {
  test('seconds to the programming moment; a trigger after it (clocks apart) is left out', () => {
    assert.deepEqual(programmingLatencies([START, START + 750, START + 2000, START + 3000], START + 2000), [2, 1.25, 0]);
  });
});
