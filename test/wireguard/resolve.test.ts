import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEndpoint } from '../../src/model/endpoint.js';
import { parseIp } from '../../src/model/ip.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import type { WireGuardConfig } from '../../src/wireguard/config.js';
import { resolveEndpoints } from '../../src/wireguard/resolve.js';

const [A, B, C] = [0, 1, 2].map(() => publicKeyOf(generatePrivateKey()));

const CONFIG: WireGuardConfig = {
  interface: {},
  peers: [
    { publicKey: A!, allowedIPs: [], endpoint: parseEndpoint('node-a.example.com:51820') },
    { publicKey: B!, allowedIPs: [], endpoint: parseEndpoint('gone.example.com:51820') },
    { publicKey: C!, allowedIPs: [], endpoint: parseEndpoint('[2001:db8::c]:51820') },
  ],
};

test('DNS endpoints resolve to IPs; an unresolvable one is dropped and reported by peer', async () => {
  const asked: string[] = [];
  const { config, unresolved } = await resolveEndpoints(CONFIG, async (name) => {
    asked.push(name);
    if (name === 'node-a.example.com') return parseIp('2001:db8::a');
    throw new Error('getaddrinfo ENOTFOUND');
  });
  assert.deepEqual(asked.sort(), ['gone.example.com', 'node-a.example.com']);
  assert.deepEqual(config.peers.map((p) => p.endpoint), [parseEndpoint('[2001:db8::a]:51820'), undefined, parseEndpoint('[2001:db8::c]:51820')]);
  assert.deepEqual(unresolved, [`peer ${B}: endpoint gone.example.com:51820 does not resolve: getaddrinfo ENOTFOUND`]);
});
