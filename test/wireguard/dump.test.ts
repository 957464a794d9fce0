import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { parseCidr } from '../../src/model/ip.js';
import { parseDump } from '../../src/wireguard/dump.js';

// `wg show NAME dump` from a wireguard-go device (throwaway keys), with a handshake typed in.
const DUMP = [
  '6MlvShShGCpBTFfqLK+A6ln3I0RQ7WFhl2OyaQ4fp0s=\tUPlruWCJ0Ie1dW4jnGhdB5AcJJDSTwzcDmS4n4HfTkU=\t51820\t0x10',
  'Eo/LipsAUg9GDdwvOdqPpKn+vPRmLWEVVeUh8jZ+nE8=\t94nq73zwIPyxtATxTtq6+/WFYKW7wXfBn4p4xI7uEI8=\t[fd00::5]:51820\t10.1.2.0/24,fd00::/64,10.9.9.9/32\t1700000000\t9216\t12345678901\t25',
  '1jkOoAMiddIiin+WHr3PIj1xEh6/X5sCmPSgXKRIbEs=\t(none)\t(none)\t(none)\t0\t0\t0\toff',
  '',
].join('\n');

test('a dump gives per-peer handshake, transfer and endpoint, and no private or preshared key', () => {
  const status = parseDump(DUMP);
  assert.equal(status.publicKey, 'UPlruWCJ0Ie1dW4jnGhdB5AcJJDSTwzcDmS4n4HfTkU=');
  assert.equal(status.listenPort, 51820);
  assert.equal(status.fwMark, 16);
  const [a, b] = status.peers;
  assert.deepEqual(a, {
    publicKey: 'Eo/LipsAUg9GDdwvOdqPpKn+vPRmLWEVVeUh8jZ+nE8=',
    endpoint: parseEndpoint('[fd00::5]:51820'),
    allowedIPs: ['10.1.2.0/24', 'fd00::/64', '10.9.9.9/32'].map(parseCidr),
    latestHandshake: new Date(1_700_000_000_000),
    rxBytes: 9216n,
    txBytes: 12345678901n,
    persistentKeepalive: 25,
  });
  assert.deepEqual(b, {
    publicKey: '1jkOoAMiddIiin+WHr3PIj1xEh6/X5sCmPSgXKRIbEs=',
    endpoint: undefined,
    allowedIPs: [],
    latestHandshake: undefined,
    rxBytes: 0n,
    txBytes: 0n,
    persistentKeepalive: undefined,
  });
  const serialized = JSON.stringify(status, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  assert.ok(!serialized.includes('6MlvShSh') && !serialized.includes('94nq73zw'));
});

test('a fresh device without a private key dumps as (none) with its random port', () => {
  assert.deepEqual(parseDump('(none)\t(none)\t58765\toff\n'), { publicKey: undefined, listenPort: 58765, fwMark: undefined, peers: [] });
});

test('a malformed dump line names its line number', () => {
  assert.throws(() => parseDump(''), /empty output/);
  assert.throws(() => parseDump('(none)\t(none)\t1\toff\nabc\tdef'), /line 2: want 8 tab-separated fields, got 2/);
  assert.throws(() => parseDump('(none)\t(none)\t1\toff\nxx\t(none)\t(none)\t(none)\t0\t0\t0\toff'), /line 2: public key is malformed/);
  assert.throws(() => parseDump('(none)\t(none)\tport\toff'), /line 1: listen port "port" is not a number/);
});
