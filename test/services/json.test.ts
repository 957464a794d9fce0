import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ep, jsonOf, onlyPort, service, slice, web } from './builder.js';

const DNS = [
  service('dns', { clusterIP: '10.96.0.10', ports: [{ name: 'udp-dns', protocol: 'UDP', port: 53, targetPort: 5353 }] }),
  slice('dns', { ports: [{ name: 'udp-dns', protocol: 'UDP', port: 5353 }], endpoints: [ep('10.244.1.5', { node: 'n1' })] }),
];

test('the documented shape, key for key and in order', () => {
  const json = jsonOf(DNS);
  const documented = {
    node: 'n1',
    servicePorts: [
      {
        service: 'default/dns',
        portName: 'udp-dns',
        protocol: 'UDP',
        clusterIPs: ['10.96.0.10'],
        port: 53,
        nodePort: null,
        externalIPs: [],
        loadBalancerIPs: [],
        sessionAffinityTimeoutSeconds: null,
        healthCheckNodePort: null,
        internalEndpoints: ['10.244.1.5:5353'],
        externalEndpoints: ['10.244.1.5:5353'],
      },
    ],
  };
  assert.deepEqual(Object.keys(json).slice(0, 2), ['node', 'servicePorts']);
  const port = json.servicePorts[0] as unknown as Record<string, unknown>;
  assert.deepEqual(Object.keys(port).slice(0, 12), Object.keys(documented.servicePorts[0] as object));
  const documentedPart = { node: json.node, servicePorts: json.servicePorts.map((p) => Object.fromEntries(Object.entries(p).slice(0, 12))) };
  assert.equal(JSON.stringify(documentedPart), JSON.stringify(documented));
});

test('the extra fields: cluster endpoints, policies, source ranges, node port addresses and cluster CIDRs', () => {
  const json = jsonOf(DNS, { clusterCIDRs: ['10.244.1.0/24'] });
  const { service: _s, portName: _n, protocol: _p, clusterIPs: _c, port: _o, nodePort: _np, externalIPs: _e, loadBalancerIPs: _l, sessionAffinityTimeoutSeconds: _a, healthCheckNodePort: _h, internalEndpoints: _i, externalEndpoints: _x, ...extra } = json.servicePorts[0]!;
  assert.deepEqual(extra, { clusterEndpoints: ['10.244.1.5:5353'], externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster', loadBalancerSourceRanges: [] });
  assert.deepEqual([json.nodePortAddresses, json.clusterCIDRs], [['192.168.0.1', 'fd00::1'], ['10.244.1.0/24']]);
});

test('IPv6 endpoints are written [address]:port, addresses in RFC 5952 form', () => {
  const p = onlyPort([
    web({ clusterIP: 'FD00:0096:0000::0001' }),
    slice('web', { addressType: 'IPv6', endpoints: [ep('fd00:244:0:0:0:0:0:1'), ep('fd00:244::10')] }),
  ]);
  assert.deepEqual([p.clusterIPs, p.internalEndpoints], [['fd00:96::1'], ['[fd00:244::10]:8080', '[fd00:244::1]:8080']]);
});

test('absent values are null, never left out', () => {
  const p = onlyPort([web()]);
  assert.deepEqual([p.nodePort, p.sessionAffinityTimeoutSeconds, p.healthCheckNodePort], [null, null, null]);
  const text = JSON.stringify(p);
  for (const key of ['nodePort', 'sessionAffinityTimeoutSeconds', 'healthCheckNodePort']) assert.match(text, new RegExp(`"${key}":null`));
});

test('every list of strings is sorted as strings (clusterIPs keep the Service\'s order)', () => {
  const p = onlyPort([
    web({ type: 'LoadBalancer', clusterIP: 'fd00:96::1', clusterIPs: ['fd00:96::1', '10.96.0.1'], externalIPs: ['192.0.2.100', '192.0.2.20', 'fd00::9'] }, { status: { loadBalancer: { ingress: [{ ip: '198.51.100.9' }, { ip: '198.51.100.10' }] } } }),
    slice('web', { endpoints: [ep('10.244.1.9'), ep('10.244.1.10')] }),
  ]);
  assert.deepEqual(p.clusterIPs, ['fd00:96::1', '10.96.0.1']);
  for (const list of [p.externalIPs, p.loadBalancerIPs, p.internalEndpoints, p.externalEndpoints, p.clusterEndpoints]) {
    assert.ok(list.length >= 2);
    assert.deepEqual(list, [...list].sort());
  }
});
