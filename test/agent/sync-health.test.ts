import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoopHealth } from '../../src/agent/loop-health.js';
import {
  NEVER_SYNCED,
  type SyncEvent,
  type SyncState,
  healthBoundMs,
  judgeHealth,
  overdueSince,
  recordSync,
  safeLine,
} from '../../src/agent/sync-health.js';

const T = Date.UTC(2025, 0, 1, 12, 0, 0);
const BOUND = 10_000;

const due = (s: number): SyncEvent => ({ kind: 'due', at: T + s * 1000 });
const started = (s: number): SyncEvent => ({ kind: 'started', at: T + s * 1000 });
const succeeded = (s: number): SyncEvent => ({ kind: 'succeeded', at: T + s * 1000 });
const failed = (s: number, error = 'wireguard: wg showconf timed out after 30000 ms'): SyncEvent => ({ kind: 'failed', at: T + s * 1000, error });

function replay(events: readonly SyncEvent[]): SyncState {
  return events.reduce(recordSync, NEVER_SYNCED);
}

test('the bound is twice the resync period, as kube-proxy sets its healthz timeout', () => {
  assert.equal(healthBoundMs(30_000), 60_000);
});

// [name, events, now (s), overdue since (s) or undefined]
const OVERDUE: [string, SyncEvent[], number, number | undefined][] = [
  ['nothing due yet (before the first trigger)', [], 100, undefined],
  ['due, not yet run, exactly at the bound', [due(0)], 10, undefined],
  ['due and never run past the bound (a loop stuck before its first run)', [due(0)], 11, 0],
  ['due, run and succeeded', [due(0), started(0), succeeded(1)], 100, undefined],
  ['a run that fails leaves the sync due from its first moment', [due(0), started(0), failed(5)], 11, 0],
  ['failing runs one after another keep the first due moment', [due(0), started(0), failed(3), due(5), started(5), failed(8)], 11, 0],
  ['a success after failures answers everything due before it', [due(0), started(0), failed(3), due(5), started(5), failed(8), due(10), started(10), succeeded(12)], 40, undefined],
  ['a run in progress past the bound (a step that never ends)', [due(0), started(0)], 11, 0],
  ['a success answers an event that came during its run (kube-proxy clears on every success)', [due(0), started(0), due(5), succeeded(6)], 100, undefined],
  ['due again after a success and stuck', [due(0), started(0), succeeded(1), due(30), started(30)], 41, 30],
  ['due again after a success, within the bound', [due(0), started(0), succeeded(1), due(30), started(30)], 40, undefined],
  ['runs back to back, each longer than the resync period but succeeding', [due(0), started(0), due(4), succeeded(7), started(7), due(8), due(12), succeeded(14), started(14), due(16)], 21, undefined],
];

for (const [name, events, now, expected] of OVERDUE) {
  test(`overdue: ${name}`, () => {
    const since = overdueSince(replay(events), T + now * 1000, BOUND);
    assert.equal(since, expected === undefined ? undefined : T + expected * 1000);
  });
}

test('healthy: the body says ok and each loop\'s last sync age', () => {
  const verdict = judgeHealth(
    [
      { loop: 'mesh', state: replay([due(0), started(0), succeeded(1)]) },
      { loop: 'services', state: replay([due(0), started(1), succeeded(2.5)]) },
    ],
    T + 4000,
    BOUND,
  );
  assert.deepEqual(verdict, { healthy: true, body: 'ok\nmesh: last sync 3.0 s ago\nservices: last sync 1.5 s ago\n' });
});

test('healthy at start-up: a loop that has not synced yet but is within the bound', () => {
  const verdict = judgeHealth([{ loop: 'mesh', state: replay([due(0), started(0)]) }], T + 2000, BOUND);
  assert.deepEqual(verdict, { healthy: true, body: 'ok\nmesh: no successful sync yet, a sync running for 2.0 s\n' });
});

test('unhealthy: the body names the loop, since when, and its last error on one line', () => {
  const verdict = judgeHealth(
    [
      { loop: 'mesh', state: replay([due(0), started(0), succeeded(1), due(30), started(30), failed(31)]) },
      { loop: 'services', state: replay([due(30), started(31), succeeded(32)]) },
    ],
    T + 45_000,
    BOUND,
  );
  assert.equal(verdict.healthy, false);
  assert.equal(
    verdict.body,
    'unhealthy: mesh sync overdue (bound 10.0 s)\n' +
      'mesh: sync due since 2025-01-01T12:00:30.000Z (15.0 s ago), last sync 44.0 s ago, last error 14.0 s ago: wireguard: wg showconf timed out after 30000 ms\n' +
      'services: last sync 13.0 s ago\n',
  );
});

test('unhealthy: both loops can be overdue; an error older than the last success is not shown', () => {
  const verdict = judgeHealth(
    [
      { loop: 'mesh', state: replay([due(0), started(0), failed(1, 'routes: old'), due(2), started(2), succeeded(3), due(5)]) },
      { loop: 'services', state: replay([due(0)]) },
    ],
    T + 20_000,
    BOUND,
  );
  assert.equal(verdict.healthy, false);
  const [head, mesh, services] = verdict.body.split('\n');
  assert.equal(head, 'unhealthy: mesh and services sync overdue (bound 10.0 s)');
  assert.equal(mesh, 'mesh: sync due since 2025-01-01T12:00:05.000Z (15.0 s ago), last sync 17.0 s ago');
  assert.equal(services, 'services: sync due since 2025-01-01T12:00:00.000Z (20.0 s ago), no successful sync yet');
});

test('an error in the body is one line, without keys, of bounded length', () => {
  const key = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
  assert.equal(safeLine(`\n  wg: Line unrecognized: PrivateKey=${key}\nsecond line\n`), 'wg: Line unrecognized: PrivateKey=(key)');
  const long = safeLine('x'.repeat(1000));
  assert.equal(long.length, 300);
  assert.ok(long.endsWith('…'));
  const state = replay([due(0), started(0), failed(1, `multi\nline ${key}`)]);
  const { body } = judgeHealth([{ loop: 'mesh', state }], T + 11_000, BOUND);
  assert.ok(!body.includes(key));
  assert.match(body, /last error 10\.0 s ago: multi\n$/);
});

test('LoopHealth records due, start and outcome per loop on its clock; a throwing sync is a failure', async () => {
  let now = T;
  const results: string[] = [];
  const health = new LoopHealth(['mesh', 'services'], BOUND, (loop, r) => results.push(`${loop} ${r.ok ? 'ok' : r.error}`), () => now);
  health.due();
  await health.run('mesh', async () => {
    now += 1000;
    return { ok: true };
  });
  await health.run('services', async () => {
    now += 1000;
    throw new Error('apply failed\nwith detail');
  });
  assert.deepEqual(results, ['mesh ok', 'services apply failed\nwith detail']);
  now += 7000;
  assert.equal(health.verdict().healthy, true, 'services has been due for 9 s: within the bound');
  now += 2500;
  const verdict = health.verdict();
  assert.equal(verdict.healthy, false);
  assert.match(verdict.body, /^unhealthy: services sync overdue/);
  assert.match(verdict.body, /\nservices: sync due since 2025-01-01T12:00:00\.000Z \(11\.5 s ago\), no successful sync yet, last error 9\.5 s ago: apply failed\n$/);
});
