import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failureOfResponse, failureOfWatchError } from '../../src/sources/kubernetes/api-failure.js';
import { BACKOFF_CAP_MS, backoffDelayMs } from '../../src/sources/kubernetes/backoff.js';

test('backoff: no wait without failures, then doubling from 0.5 s, up to 25 % shorter at random, capped at 30 s', () => {
  const cases: [failures: number, random: number, ms: number][] = [
    [0, 0.9, 0],
    [-1, 0.5, 0],
    [1, 0, 500],
    [1, 0.5, 438],
    [1, 0.999999, 375],
    [2, 0, 1000],
    [3, 0, 2000],
    [6, 0, 16000],
    [7, 0, 30000],
    [7, 0.999999, 22500],
    [8, 0.5, 26250],
    [1000, 0, 30000],
  ];
  for (const [failures, random, ms] of cases) assert.equal(backoffDelayMs(failures, random), ms, `${failures} failures, random ${random}`);
});

test('backoff: a smaller cap (the agent passes its resync period) bounds every delay', () => {
  assert.equal(backoffDelayMs(3, 0, 2000), 2000);
  assert.equal(backoffDelayMs(4, 0, 2000), 2000);
  assert.equal(backoffDelayMs(100, 0.5, 2000), 1750);
});

test('backoff: every delay exceeds the one before until the cap, whatever the jitter', () => {
  for (let failures = 1; BACKOFF_CAP_MS > 500 * 2 ** failures; failures++) {
    assert.ok(backoffDelayMs(failures + 1, 0.999999) > backoffDelayMs(failures, 0), `after ${failures} failures`);
  }
});

test('API failures are classified by status, and a 504 with ResourceVersionTooLarge is told apart', () => {
  const status = (code: number, reason: string, causes?: string[]) =>
    JSON.stringify({ kind: 'Status', code, reason, message: `m ${code}\nsecond line`, ...(causes ? { details: { causes: causes.map((r) => ({ reason: r })) } } : {}) });
  const cases: [code: number, body: string, reason: string][] = [
    [401, status(401, 'Unauthorized'), 'unauthorized'],
    [403, status(403, 'Forbidden'), 'forbidden'],
    [404, 'page not found', 'not_found'],
    [410, status(410, 'Expired'), 'expired'],
    [429, status(429, 'TooManyRequests'), 'throttled'],
    [500, status(500, 'InternalError'), 'server_error'],
    [504, status(504, 'Timeout'), 'server_error'],
    [504, status(504, 'Timeout', ['ResourceVersionTooLarge']), 'resource_version_too_large'],
    [400, status(400, 'BadRequest'), 'client_error'],
  ];
  for (const [code, body, reason] of cases) assert.equal(failureOfResponse(code, body).reason, reason, `${code} ${body}`);
  assert.equal(failureOfResponse(500, status(500, 'InternalError')).message, '500 InternalError: m 500');
  assert.equal(failureOfWatchError({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old' }).reason, 'expired');
  assert.equal(failureOfWatchError('garbage').reason, 'server_error');
});
