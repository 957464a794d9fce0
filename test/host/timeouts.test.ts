import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TimeoutError, configureTimeouts, withTimeout } from '../../src/host/timeouts.js';
import { lookupHost } from '../../src/wireguard/resolve.js';
import { formatIp } from '../../src/model/ip.js';

test('work that never settles is given up with a TimeoutError, and the timeout is reported', async () => {
  const reported: string[] = [];
  configureTimeouts({ onTimeout: (operation) => reported.push(operation) });
  await assert.rejects(withTimeout(new Promise<never>(() => {}), 50, 'dns', 'DNS look-up of hang.example'), (e: unknown) => {
    assert.ok(e instanceof TimeoutError);
    assert.equal(e.message, 'DNS look-up of hang.example timed out after 50 ms');
    return true;
  });
  assert.deepEqual(reported, ['dns']);
});

test('work that settles in time passes through, value or error', async () => {
  assert.equal(await withTimeout(Promise.resolve(7), 10_000, 'dns', 'x'), 7);
  await assert.rejects(withTimeout(Promise.reject(new Error('ENOTFOUND')), 10_000, 'dns', 'x'), { message: 'ENOTFOUND' });
});

test('a listener that throws does not change the timeout into another error', async () => {
  configureTimeouts({
    onTimeout: () => {
      throw new Error('metrics broke');
    },
  });
  await assert.rejects(withTimeout(new Promise<never>(() => {}), 10, 'dns', 'y'), TimeoutError);
});

test('the system look-up still resolves names (through the bounded path)', async () => {
  assert.ok(['127.0.0.1', '::1'].includes(formatIp(await lookupHost('localhost'))));
});
