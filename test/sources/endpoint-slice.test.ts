import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIp } from '../../src/model/ip.js';
import { decodeEndpointSlice } from '../../src/sources/endpoint-slice.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { InvalidObjectError } from '../../src/sources/problem.js';

const LABELS = { 'kubernetes.io/service-name': 'web' };

function obj(fields: Record<string, unknown>, labels: Record<string, string> = LABELS): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-abc', namespace: 'shop', labels },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: [],
    ...fields,
  } as KubeObject;
}

/** The first endpoint of the decoded slice, its address as a string. */
function firstEndpoint(endpoint: Record<string, unknown>): Record<string, unknown> {
  const e = decodeEndpointSlice(obj({ endpoints: [endpoint] }))?.endpoints[0];
  assert.ok(e);
  return { ...e, address: formatIp(e.address) };
}

describe('decodeEndpointSlice', () => {
  test('a slice with its service, family, ports and endpoints', () => {
    const s = decodeEndpointSlice(
      obj({
        addressType: 'IPv6',
        ports: [{ name: 'http', protocol: 'TCP', port: 8080 }, { name: 'dns', protocol: 'UDP', port: 53 }],
        endpoints: [{ addresses: ['fd00::1'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1', zone: 'z1', hints: { forZones: [{ name: 'z1' }] } }],
      }),
    );
    assert.ok(s);
    assert.deepEqual({ ...s, endpoints: s.endpoints.map((e) => ({ ...e, address: formatIp(e.address) })) }, {
      namespace: 'shop',
      name: 'web-abc',
      service: 'web',
      family: 6,
      ports: [{ name: 'http', protocol: 'TCP', port: 8080 }, { name: 'dns', protocol: 'UDP', port: 53 }],
      endpoints: [{ address: 'fd00::1', ready: true, serving: true, terminating: false, nodeName: 'n1', zoneHints: ['z1'] }],
    });
  });

  const conditions: [string, Record<string, unknown> | undefined, [boolean, boolean, boolean]][] = [
    ['no conditions: ready, serving, not terminating', undefined, [true, true, false]],
    ['empty conditions: the same', {}, [true, true, false]],
    ['ready false: serving follows it', { ready: false }, [false, false, false]],
    ['ready false, serving true, terminating', { ready: false, serving: true, terminating: true }, [false, true, true]],
    ['ready null reads as unknown, so ready', { ready: null }, [true, true, false]],
    ['terminating alone', { terminating: true }, [true, true, true]],
  ];
  for (const [name, c, [ready, serving, terminating]] of conditions) {
    test(`conditions: ${name}`, () => {
      const e = firstEndpoint({ addresses: ['10.244.1.1'], ...(c && { conditions: c }) });
      assert.deepEqual([e['ready'], e['serving'], e['terminating']], [ready, serving, terminating]);
    });
  }

  test('an endpoint without node, zone or hints', () => {
    assert.deepEqual(firstEndpoint({ addresses: ['10.244.1.1'] }), { address: '10.244.1.1', ready: true, serving: true, terminating: false, nodeName: undefined, zoneHints: [] });
  });

  test('several hinted zones, in order', () => {
    assert.deepEqual(firstEndpoint({ addresses: ['10.244.1.1'], hints: { forZones: [{ name: 'z2' }, { name: 'z1' }] } })['zoneHints'], ['z2', 'z1']);
  });

  test('ports default to name "" and TCP; ports without a number are dropped', () => {
    const s = decodeEndpointSlice(obj({ ports: [{ port: 80 }, { name: 'all' }, { name: 'zero', port: 0 }, { name: 'nul', port: null }] }));
    assert.deepEqual(s?.ports, [{ name: '', protocol: 'TCP', port: 80 }]);
  });

  test('no ports and no endpoints (null, as the API allows) are empty lists', () => {
    const s = decodeEndpointSlice(obj({ ports: null, endpoints: null }));
    assert.deepEqual([s?.ports, s?.endpoints], [[], []]);
  });

  test('an FQDN slice is skipped, not rejected', () => {
    assert.equal(decodeEndpointSlice(obj({ addressType: 'FQDN', endpoints: [{ addresses: ['example.com'] }] })), undefined);
  });

  test('metadata.namespace defaults to "default"', () => {
    const s = decodeEndpointSlice({ metadata: { name: 's', labels: LABELS }, addressType: 'IPv4' } as KubeObject);
    assert.equal(s?.namespace, 'default');
  });

  const rejected: [string, KubeObject, string][] = [
    ['no name', { metadata: { namespace: 'shop', labels: LABELS }, addressType: 'IPv4' } as KubeObject, 'EndpointSlice "shop/": metadata.name: missing'],
    ['no addressType', obj({ addressType: undefined }), 'EndpointSlice "shop/web-abc": addressType: missing'],
    ['an unknown addressType', obj({ addressType: 'IPX' }), 'EndpointSlice "shop/web-abc": addressType: "IPX" is not one of IPv4, IPv6, FQDN'],
    ['no service-name label', obj({}, {}), 'EndpointSlice "shop/web-abc": metadata.labels[kubernetes.io/service-name]: missing'],
    ['an empty service-name label', obj({}, { 'kubernetes.io/service-name': '' }), 'EndpointSlice "shop/web-abc": metadata.labels[kubernetes.io/service-name]: missing'],
    ['a port out of range', obj({ ports: [{ name: 'http', port: 65536 }] }), 'EndpointSlice "shop/web-abc": ports[0].port: 65536 is not a port (1-65535)'],
    ['a fractional port', obj({ ports: [{ name: 'http', port: 80.5 }] }), 'EndpointSlice "shop/web-abc": ports[0].port: 80.5 is not a port (1-65535)'],
    ['an unknown protocol', obj({ ports: [{ name: 'http', port: 80, protocol: 'QUIC' }] }), 'EndpointSlice "shop/web-abc": ports[0].protocol: "QUIC" is not one of TCP, UDP, SCTP'],
    ['a port name that is not a DNS label', obj({ ports: [{ name: 'http"', port: 80 }] }), 'EndpointSlice "shop/web-abc": ports[0].name: "http\\"" is not a DNS label (a-z, 0-9 and \'-\', at most 63)'],
    ['duplicate port names', obj({ ports: [{ name: 'http', port: 80 }, { name: 'http', port: 81, protocol: 'UDP' }] }), 'EndpointSlice "shop/web-abc": ports[1].name: "http" is also the name of ports[0]'],
    ['a port name that is not a string', obj({ ports: [{ name: 7, port: 80 }] }), 'EndpointSlice "shop/web-abc": ports[0].name: 7 is not a string'],
    ['endpoints that are not a list', obj({ endpoints: 'all' }), 'EndpointSlice "shop/web-abc": endpoints: "all" is not a list'],
    ['an endpoint without addresses', obj({ endpoints: [{ nodeName: 'n1' }] }), 'EndpointSlice "shop/web-abc": endpoints[0].addresses: missing'],
    ['an endpoint with an empty address list', obj({ endpoints: [{ addresses: [] }] }), 'EndpointSlice "shop/web-abc": endpoints[0].addresses: missing'],
    ['a bad address', obj({ endpoints: [{ addresses: ['10.244.1.1'] }, { addresses: ['10.244.1.256'] }] }), 'EndpointSlice "shop/web-abc": endpoints[1].addresses[0]: "10.244.1.256" is not an IP address'],
    ['an IPv6 address in an IPv4 slice', obj({ endpoints: [{ addresses: ['fd00::1'] }] }), 'EndpointSlice "shop/web-abc": endpoints[0].addresses[0]: "fd00::1" is not an IPv4 address'],
    ['a second address of another family (only the first is used, all are checked)', obj({ endpoints: [{ addresses: ['10.244.1.1', 'fd00::1'] }] }), 'EndpointSlice "shop/web-abc": endpoints[0].addresses[1]: "fd00::1" is not an IPv4 address'],
    ['an IPv4 address in an IPv6 slice', obj({ addressType: 'IPv6', endpoints: [{ addresses: ['10.0.0.1'] }] }), 'EndpointSlice "shop/web-abc": endpoints[0].addresses[0]: "10.0.0.1" is not an IPv6 address'],
    ['a condition that is not a boolean', obj({ endpoints: [{ addresses: ['10.244.1.1'], conditions: { ready: 'yes' } }] }), 'EndpointSlice "shop/web-abc": endpoints[0].conditions.ready: "yes" is not true or false'],
    ['a nodeName that is not a string', obj({ endpoints: [{ addresses: ['10.244.1.1'], nodeName: 1 }] }), 'EndpointSlice "shop/web-abc": endpoints[0].nodeName: 1 is not a string'],
    ['a zone hint without a name', obj({ endpoints: [{ addresses: ['10.244.1.1'], hints: { forZones: [{}] } }] }), 'EndpointSlice "shop/web-abc": endpoints[0].hints.forZones[0].name: missing'],
    ['hints that are not an object', obj({ endpoints: [{ addresses: ['10.244.1.1'], hints: ['z1'] }] }), 'EndpointSlice "shop/web-abc": endpoints[0].hints: ["z1"] is not an object'],
  ];
  for (const [name, o, message] of rejected) {
    test(`rejects ${name}`, () => {
      assert.throws(() => decodeEndpointSlice(o), (err: unknown) => {
        assert.ok(err instanceof InvalidObjectError);
        assert.equal(err.message, message);
        assert.equal(err.problem.kind, 'EndpointSlice');
        return true;
      });
    });
  }
});
