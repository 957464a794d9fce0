import assert from 'node:assert/strict';
import { test } from 'node:test';
import { equalEndpoint, formatEndpoint, parseEndpoint } from '../../src/model/endpoint.js';

test('endpoints parse IPv4, bracketed IPv6 and DNS names', () => {
  const cases: [string, string][] = [
    ['1.2.3.4:51820', '1.2.3.4:51820'],
    ['[fd00::1]:51820', '[fd00::1]:51820'],
    ['[2001:DB8:0::1]:1', '[2001:db8::1]:1'],
    ['Node-1.Example.com:65535', 'node-1.example.com:65535'],
    ['localhost:80', 'localhost:80'],
  ];
  for (const [input, want] of cases) assert.equal(formatEndpoint(parseEndpoint(input)), want, input);
  assert.equal(parseEndpoint('a.example:1').host.kind, 'dns');
});

test('malformed endpoints are rejected with the reason', () => {
  const cases: [string, RegExp][] = [
    ['1.2.3.4', /want host:port/],
    ['1.2.3.4:0', /bad port/],
    ['1.2.3.4:65536', /bad port/],
    ['1.2.3.4:x', /bad port/],
    ['fd00::1:51820', /want host:port/],
    ['[1.2.3.4]:1', /brackets are for IPv6/],
    ['[fd00::zz]:1', /bad IP/],
    ['300.1.1.1:1', /bad IP/],
    ['bad_host!:1', /bad host name/],
    [':51820', /want host:port/],
  ];
  for (const [input, want] of cases) assert.throws(() => parseEndpoint(input), want, input);
});

test('endpoint equality compares address and port', () => {
  assert.ok(equalEndpoint(parseEndpoint('[fd00:0::1]:5'), parseEndpoint('[fd00::1]:5')));
  assert.ok(!equalEndpoint(parseEndpoint('1.2.3.4:5'), parseEndpoint('1.2.3.4:6')));
  assert.ok(equalEndpoint(undefined, undefined));
  assert.ok(!equalEndpoint(parseEndpoint('1.2.3.4:5'), undefined));
});
