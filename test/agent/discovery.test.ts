import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type HostAddress, discoverAddresses } from '../../src/agent/discovery.js';
import { formatCidr, parseCidr } from '../../src/model/ip.js';

const addr = (iface: string, cidr: string, onDefaultRoute = false): HostAddress => ({ iface, cidr: parseCidr(cidr), onDefaultRoute });
const show = (d: ReturnType<typeof discoverAddresses>) => [d.endpointIP && formatCidr(d.endpointIP), d.internalIP && formatCidr(d.internalIP)];

test('the endpoint prefers a public address and the internal IP a private one', () => {
  assert.deepEqual(show(discoverAddresses([addr('eth0', '192.168.0.5/24', true), addr('eth1', '203.0.113.9/24')])), ['203.0.113.9/24', '192.168.0.5/24']);
});

test('a node with only private addresses uses the default-route one for both', () => {
  assert.deepEqual(show(discoverAddresses([addr('eth1', '10.0.0.5/8'), addr('eth0', '172.31.0.2/24', true)])), ['172.31.0.2/24', '172.31.0.2/24']);
});

test('a node with only a public address has no internal IP', () => {
  assert.deepEqual(show(discoverAddresses([addr('eth0', '198.51.100.4/24', true)])), ['198.51.100.4/24', undefined]);
});

test('--internal-cidr chooses the internal address', () => {
  const addrs = [addr('eth0', '192.168.0.5/24', true), addr('eth1', '10.8.0.5/16')];
  assert.deepEqual(show(discoverAddresses(addrs, [parseCidr('10.8.0.0/16')])), ['192.168.0.5/24', '10.8.0.5/16']);
});

test("the agent's own devices, loopback, container links and host routes are ignored", () => {
  const addrs = [addr('lo', '127.0.0.1/8'), addr('wirelane0', '10.4.0.1/16'), addr('docker0', '172.17.0.1/16'), addr('eth0', '10.1.1.1/32'), addr('eth0', '192.168.1.2/24')];
  assert.deepEqual(show(discoverAddresses(addrs)), ['192.168.1.2/24', '192.168.1.2/24']);
});

test('IPv6 is used when there is no IPv4, and ULA counts as private', () => {
  assert.deepEqual(show(discoverAddresses([addr('eth0', 'fd00::5/64', true), addr('eth0', '2001:db8::5/64', true)])), ['2001:db8::5/64', 'fd00::5/64']);
  assert.deepEqual(show(discoverAddresses([])), [undefined, undefined]);
});

test("the agent's own devices and the mesh subnet are never the node's addresses, whatever their names", () => {
  // A public node whose only private address is its WireGuard address (issue 12): before, the
  // WireGuard device became the "underlay", and --mtu auto walked down from its own MTU.
  const addrs = [addr('eth0', '198.51.100.4/24', true), addr('mesh0', '10.4.0.1/16'), addr('tun9', '10.4.1.7/16')];
  const own = { interfaces: ['mesh0'], meshSubnets: [parseCidr('10.4.0.0/16')] };
  assert.deepEqual(show(discoverAddresses(addrs, [], own)), ['198.51.100.4/24', undefined]);
  assert.deepEqual(show(discoverAddresses(addrs)), ['198.51.100.4/24', '10.4.0.1/16'], 'without knowing them, the mesh address looks private');
});

test('dual stack: the other family\'s private address on the internal IP\'s interface is the second internal IP', () => {
  const other = (d: ReturnType<typeof discoverAddresses>) => d.otherInternalIP && formatCidr(d.otherInternalIP);
  const addrs = [addr('eth1', 'fd99::5/64'), addr('eth0', '192.168.0.5/24', true), addr('eth0', '2001:db8::5/64', true), addr('eth0', 'fd31::5/64', true)];
  assert.equal(other(discoverAddresses(addrs)), 'fd31::5/64', 'private, same interface; not a public one, not another interface');
  assert.equal(other(discoverAddresses([addr('eth0', '192.168.0.5/24', true), addr('eth1', 'fd99::5/64')])), undefined);
  assert.equal(other(discoverAddresses([addr('eth0', 'fd31::5/64', true), addr('eth0', '10.0.0.5/8', true)])), 'fd31::5/64', 'IPv4 first, IPv6 second');
  const own = { interfaces: [], meshSubnets: [parseCidr('10.4.0.0/16'), parseCidr('fd00:4::/64')] };
  assert.equal(other(discoverAddresses([addr('eth0', '192.168.0.5/24', true), addr('eth0', 'fd00:4::9/64', true)], [], own)), undefined, 'never a mesh address');
});
