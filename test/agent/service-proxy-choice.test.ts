// The service proxy the agent runs removes what the other modes left, once, after its first
// successful apply (so one data path always answers), and the modes come from one table.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SERVICE_PROXY_CHOICES } from '../../src/agent/config.js';
import { LeftoverRemovingProxy } from '../../src/agent/service-proxy-choice.js';
import { SERVICE_PROXY_MODES } from '../../src/agent/service-proxy-modes.js';
import type { ServiceProxy } from '../../src/dataplane/service-proxy.js';
import { applyMap } from '../support/apply-map.js';
import { serviceMap } from '../support/service-map.js';

/** A proxy whose applies succeed or fail as told, recording every call, removal and reported failure in one list. */
function recording(outcomes: boolean[], removals: (string | undefined)[]) {
  const calls: string[] = [];
  const inner: ServiceProxy = {
    mode: 'iptables',
    apply: async () => {
      calls.push('apply');
      if (outcomes.shift() === false) throw new Error('restore failed');
      return { written: 1 };
    },
    cleanup: async () => {
      calls.push('cleanup');
    },
  };
  const remove = async () => {
    calls.push('remove leftovers');
    const failure = removals.shift();
    return failure === undefined ? [] : [failure];
  };
  const proxy = new LeftoverRemovingProxy(inner, remove, (failure) => calls.push(`reported: ${failure}`));
  return { proxy, calls };
}

test('the other modes’ leftovers go after the first successful apply, and only then', async () => {
  const { proxy, calls } = recording([false, true, true], [undefined]);
  assert.equal(proxy.mode, 'iptables');
  await assert.rejects(applyMap(proxy, serviceMap([])), /restore failed/);
  assert.deepEqual(calls, ['apply'], 'a failed apply leaves the old data path serving');
  assert.deepEqual(await applyMap(proxy, serviceMap([])), { written: 1 });
  await applyMap(proxy, serviceMap([]));
  await proxy.cleanup();
  assert.deepEqual(calls, ['apply', 'apply', 'remove leftovers', 'apply', 'cleanup']);
});

test('a removal that fails is reported, does not fail the apply, and is tried again at the next', async () => {
  const { proxy, calls } = recording([true, true, true], ['removing what the ebpf service proxy left: EBUSY', undefined]);
  assert.deepEqual(await applyMap(proxy, serviceMap([])), { written: 1 });
  await applyMap(proxy, serviceMap([]));
  await applyMap(proxy, serviceMap([]));
  assert.deepEqual(calls, ['apply', 'remove leftovers', 'reported: removing what the ebpf service proxy left: EBUSY', 'apply', 'remove leftovers', 'apply']);
});

test('--service-proxy takes auto, every mode of the table fastest first, and off', () => {
  assert.deepEqual(SERVICE_PROXY_MODES.map((row) => row.mode), ['ebpf', 'iptables', 'userspace']);
  assert.deepEqual(SERVICE_PROXY_CHOICES, ['auto', 'ebpf', 'iptables', 'userspace', 'off']);
});
