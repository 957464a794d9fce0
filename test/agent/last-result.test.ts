import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LastResult } from '../../src/agent/last-result.js';

test('the same inputs hand out the last result without deriving it again', () => {
  const last = new LastResult<string[]>();
  const topology = {};
  let derived = 0;
  const derive = (): string[] => {
    derived++;
    return ['rule'];
  };
  const first = last.of([topology, 'vxlan', 8472], derive);
  assert.equal(last.of([topology, 'vxlan', 8472], derive), first);
  assert.equal(derived, 1);
});

test('any input that is another object or value derives again, and that result is kept', () => {
  const last = new LastResult<number>();
  let n = 0;
  const derive = (): number => ++n;
  const a = {};
  assert.equal(last.of([a, 1], derive), 1);
  assert.equal(last.of([{}, 1], derive), 2, 'an equal copy is another input');
  assert.equal(last.of([a, 2], derive), 3);
  assert.equal(last.of([a, 2, undefined], derive), 4, 'another number of inputs');
  assert.equal(last.of([a, 2, undefined], derive), 4);
});

test('a derivation that throws keeps nothing', () => {
  const last = new LastResult<number>();
  const a = {};
  assert.throws(() => last.of([a], () => {
    throw new Error('bad input');
  }), /bad input/);
  assert.equal(last.of([a], () => 7), 7);
});
