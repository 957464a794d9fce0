import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compareCidr, containsIp, formatCidr, formatIp, isPrivateIp, networkOf, nthAddress, overlaps, parseCidr, parseIp,
  parseIpOrCidr,
} from '../../src/model/ip.js';

test('IP addresses round-trip in canonical form', () => {
  const cases: [string, string][] = [
    ['10.1.2.3', '10.1.2.3'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['fd00:0:0:0:0:0:0:1', 'fd00::1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
  ];
  for (const [input, want] of cases) assert.equal(formatIp(parseIp(input)), want, input);
});

test('malformed IP addresses and CIDRs are rejected', () => {
  for (const bad of ['', '1.2.3', '1.2.3.256', '01.2.3.4x', 'fe80::1%eth0', 'x::1', 'example.com']) {
    assert.throws(() => parseIp(bad), /is not an IP address/, bad);
  }
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/a', '::/129', '300.1.2.3/24', '10.0.0.0/ 8']) {
    assert.throws(() => parseCidr(bad), /is not a CIDR/, bad);
  }
});

test('a CIDR keeps its host bits; networkOf clears them', () => {
  const c = parseCidr('192.168.0.7/24');
  assert.equal(formatCidr(c), '192.168.0.7/24');
  assert.equal(formatCidr(networkOf(c)), '192.168.0.0/24');
  assert.equal(formatCidr(networkOf(parseCidr('fd00::1:2/112'))), 'fd00::1:0/112');
  assert.equal(formatCidr(parseIpOrCidr('10.0.0.1')), '10.0.0.1/32');
  assert.equal(formatCidr(parseIpOrCidr('fd00::1')), 'fd00::1/128');
});

test('containment and overlap respect families and prefix lengths', () => {
  assert.ok(containsIp(parseCidr('10.0.0.0/8'), parseIp('10.255.0.1')));
  assert.ok(!containsIp(parseCidr('10.0.0.0/8'), parseIp('11.0.0.1')));
  assert.ok(!containsIp(parseCidr('::/0'), parseIp('10.0.0.1')));
  assert.ok(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.1.0.0/16')));
  assert.ok(overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.0.0.0/8')));
  assert.ok(!overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.2.0.0/16')));
  assert.ok(!overlaps(parseCidr('0.0.0.0/0'), parseCidr('::/0')));
});

test('private means RFC 1918 or ULA', () => {
  const cases: [string, boolean][] = [
    ['10.1.1.1', true], ['172.16.0.1', true], ['172.31.255.255', true], ['172.32.0.1', false],
    ['192.168.1.1', true], ['192.169.1.1', false], ['8.8.8.8', false], ['fd12::1', true], ['fc00::1', true],
    ['2001:db8::1', false],
  ];
  for (const [ip, want] of cases) assert.equal(isPrivateIp(parseIp(ip)), want, ip);
});

test('CIDRs order IPv4 first, then by address and length', () => {
  const sorted = ['fd00::/8', '10.0.0.0/16', '10.0.0.0/8', '9.0.0.0/8'].map(parseCidr).sort(compareCidr).map(formatCidr);
  assert.deepEqual(sorted, ['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', 'fd00::/8']);
  assert.equal(formatIp(nthAddress(parseCidr('10.4.9.9/16'), 1n)), '10.4.0.1');
});
