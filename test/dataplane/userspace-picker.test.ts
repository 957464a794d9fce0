// The userspace proxy's endpoint choice: round-robin over a shuffled list, ClientIP affinity.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EndpointPicker } from '../../src/dataplane/userspace/endpoint-picker.js';
import { parseIp } from '../../src/model/ip.js';
import type { ServiceBackend } from '../../src/model/service.js';
import { formatBackend } from '../../src/services/json.js';

const ep = (ip: string, port = 8080): ServiceBackend => ({ ip: parseIp(ip), port, local: false });
const A = ep('10.0.0.1');
const B = ep('10.0.0.2');
const C = ep('10.0.0.3');
const id = (e: ServiceBackend | undefined): string => (e === undefined ? 'none' : formatBackend(e));
const picks = (p: EndpointPicker, n: number, client = '10.9.0.1', now = 0): string[] =>
  Array.from({ length: n }, () => id(p.next(client, now)));

test('round-robin gives every endpoint one turn per round', () => {
  const p = new EndpointPicker();
  p.update([A, B, C], undefined);
  const round = picks(p, 3);
  assert.deepEqual([...round].sort(), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
  assert.deepEqual(picks(p, 6), [...round, ...round]);
});

test('the list is shuffled when it changes, so nodes do not all load the same endpoint first', () => {
  // random() = 0 swaps each element with the first: [A, B, C] becomes [B, C, A].
  const p = new EndpointPicker(() => 0);
  p.update([A, B, C], undefined);
  assert.deepEqual(p.order.map(id), [B, C, A].map(id));
});

test('an unchanged endpoint set keeps its order and turn, whatever order it comes in', () => {
  const p = new EndpointPicker();
  p.update([A, B, C], undefined);
  const order = p.order.map(id);
  assert.deepEqual(picks(p, 2), order.slice(0, 2));
  assert.deepEqual(p.update([C, A, B], undefined), []);
  assert.deepEqual(p.order.map(id), order);
  assert.equal(id(p.next('10.9.0.1', 0)), order[2]);
});

test('no endpoint: nothing is chosen', () => {
  const p = new EndpointPicker();
  assert.equal(p.next('10.9.0.1', 0), undefined);
  p.update([A], 1000);
  p.update([], 1000);
  assert.equal(p.next('10.9.0.1', 0), undefined);
});

test('ClientIP affinity: a client keeps its endpoint while it comes back within the timeout', () => {
  const p = new EndpointPicker();
  p.update([A, B, C], 1000);
  const first = id(p.next('10.9.0.1', 0));
  // Each use refreshes the entry: 900 ms apart, 3 s in all, still the same endpoint.
  for (const now of [900, 1800, 2700]) assert.equal(id(p.next('10.9.0.1', now)), first);
  // Other clients take their turns meanwhile.
  const other = id(p.next('10.9.0.2', 2700));
  assert.notEqual(other, first);
});

test('ClientIP affinity expires after the timeout without use: the next endpoint in turn', () => {
  const p = new EndpointPicker();
  p.update([A, B, C], 1000);
  const order = p.order.map(id);
  assert.equal(id(p.next('10.9.0.1', 0)), order[0]);
  assert.equal(id(p.next('10.9.0.1', 999)), order[0]);
  assert.equal(id(p.next('10.9.0.1', 1999)), order[1]);
});

test('expired affinity entries are swept', () => {
  const p = new EndpointPicker();
  p.update([A, B], 1000);
  for (let i = 0; i < 50; i++) p.next(`10.9.1.${i}`, 0);
  assert.equal(p.affinityCount, 50);
  p.next('10.9.2.1', 5000);
  assert.equal(p.affinityCount, 1);
});

test('a retry after a failed dial resets the affinity and takes the next endpoint', () => {
  const p = new EndpointPicker();
  p.update([A, B, C], 60_000);
  const order = p.order.map(id);
  assert.equal(id(p.next('10.9.0.1', 0)), order[0]);
  assert.equal(id(p.next('10.9.0.1', 1, true)), order[1]);
  // The new choice is the sticky one now.
  assert.equal(id(p.next('10.9.0.1', 2)), order[1]);
  p.forget('10.9.0.1');
  assert.equal(id(p.next('10.9.0.1', 3)), order[2]);
});

test('removing an endpoint forgets the affinities to it and reports it', () => {
  const p = new EndpointPicker();
  p.update([A, B], 60_000);
  const first = p.next('10.9.0.1', 0);
  const removed = p.update([A, B].filter((e) => e !== first), 60_000);
  assert.deepEqual(removed, [id(first)]);
  assert.equal(p.affinityCount, 0);
  assert.notEqual(id(p.next('10.9.0.1', 1)), id(first));
  assert.equal(p.has(id(first)), false);
});

test('turning affinity off forgets every client', () => {
  const p = new EndpointPicker();
  p.update([A, B], 60_000);
  p.next('10.9.0.1', 0);
  p.update([A, B], undefined);
  assert.equal(p.affinityCount, 0);
  assert.notEqual(id(p.next('10.9.0.1', 1)), id(p.next('10.9.0.1', 2)));
});
