import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCniConfigList } from '../../src/cni/conflist.js';
import { loopbackList, pluginStdin, podAttachmentOf } from '../../src/cni/plugin-runner.js';

const LIST = { cniVersion: '0.4.0', name: 'wirelane', plugins: [{ type: 'bridge', bridge: 'wirelane-br' }, { type: 'portmap', capabilities: { portMappings: true } }] };

test("each plugin reads its own entry with the list's name and version, and the previous result when there is one", () => {
  assert.deepEqual(JSON.parse(pluginStdin(LIST, LIST.plugins[0]!, undefined)), { type: 'bridge', bridge: 'wirelane-br', cniVersion: '0.4.0', name: 'wirelane' });
  const prevResult = { ips: [{ address: '10.244.1.2/24' }] };
  assert.deepEqual(JSON.parse(pluginStdin(LIST, LIST.plugins[1]!, prevResult)), {
    type: 'portmap',
    capabilities: { portMappings: true },
    cniVersion: '0.4.0',
    name: 'wirelane',
    prevResult,
  });
});

test("the pod's addresses and host interface come from the bridge plugin's result", () => {
  const result = {
    cniVersion: '0.4.0',
    interfaces: [{ name: 'wirelane-br', mac: 'aa' }, { name: 'veth1a2b3c4d', mac: 'bb' }, { name: 'eth0', mac: 'cc', sandbox: '/run/netns/p' }],
    ips: [
      { version: '4', interface: 2, address: '10.244.1.7/24', gateway: '10.244.1.1' },
      { version: '6', interface: 2, address: 'fd44:1::7/64', gateway: 'fd44:1::1' },
    ],
  };
  assert.deepEqual(podAttachmentOf(result, 'wirelane-br'), { ipv4: '10.244.1.7', ipv6: 'fd44:1::7', hostIface: 'veth1a2b3c4d' });
  assert.deepEqual(podAttachmentOf({ ips: [{ address: 'fd44:1::9/64' }] }, 'wirelane-br'), { ipv4: undefined, ipv6: 'fd44:1::9', hostIface: undefined });
});

test('the loopback network is the one containerd gives every pod', () => {
  assert.deepEqual(loopbackList('0.4.0'), { cniVersion: '0.4.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }] });
});

const BAD_LISTS: readonly [string, string, RegExp][] = [
  ['not JSON', '{', /JSON/],
  ['no version', JSON.stringify({ name: 'n', plugins: [{ type: 'bridge' }] }), /cniVersion/],
  ['no plugins', JSON.stringify({ cniVersion: '0.4.0', name: 'n', plugins: [] }), /plugins/],
  ['a plugin without a type', JSON.stringify({ cniVersion: '0.4.0', name: 'n', plugins: [{ bridge: 'x' }] }), /"type"/],
  ['a single plugin, not a list', JSON.stringify({ cniVersion: '0.4.0', name: 'n', type: 'bridge' }), /plugins/],
];

for (const [name, text, error] of BAD_LISTS) {
  test(`a configuration list a runtime would refuse is refused: ${name}`, () => {
    assert.throws(() => parseCniConfigList(text), error);
  });
}

test('a valid list parses to what it says', () => {
  assert.deepEqual(parseCniConfigList(JSON.stringify(LIST)), LIST);
});
