import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCidr, parseIp } from '../../src/model/ip.js';
import { noEndpointAction } from '../../src/model/service.js';
import { formatBackend, serviceMapToJSON } from '../../src/services/json.js';
import { PROXY_NAME, computeServiceMap } from '../../src/services/service-map.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { NODE, decodeAll, ep, jsonOf, mapOf, onlyPort, service, slice, web } from './builder.js';

const N1 = { node: 'n1' };
const N2 = { node: 'n2' };

describe('frontends', () => {
  test('a ClusterIP port forwards to the slice port joined by name and protocol, never by targetPort', () => {
    const p = onlyPort([
      service('dns', { clusterIP: '10.96.0.10', ports: [{ name: 'udp-dns', protocol: 'UDP', port: 53, targetPort: 9999 }] }),
      slice('dns', { ports: [{ name: 'udp-dns', protocol: 'UDP', port: 5353 }], endpoints: [ep('10.244.1.5', N1)] }),
    ]);
    assert.deepEqual([p.service, p.portName, p.protocol, p.clusterIPs, p.port], ['default/dns', 'udp-dns', 'UDP', ['10.96.0.10'], 53]);
    assert.deepEqual([p.internalEndpoints, p.externalEndpoints], [['10.244.1.5:5353'], ['10.244.1.5:5353']]);
  });

  const joins: [string, Record<string, unknown>[], Record<string, unknown>[], string[]][] = [
    ['an unnamed port joins the slice port named ""', [{ port: 80 }], [{ name: '', port: 8080 }], ['10.244.1.1:8080']],
    ['an unnamed port joins a slice port without a name (the API default)', [{ port: 80 }], [{ port: 8080 }], ['10.244.1.1:8080']],
    ['a slice port without protocol is TCP', [{ name: 'http', port: 80 }], [{ name: 'http', port: 8080 }], ['10.244.1.1:8080']],
    ['the same name with another protocol does not join', [{ name: 'dns', protocol: 'UDP', port: 53 }], [{ name: 'dns', protocol: 'TCP', port: 53 }], []],
    ['another name does not join', [{ name: 'http', port: 80 }], [{ name: 'https', port: 8443 }], []],
    ['a slice port without a number is ignored', [{ name: 'http', port: 80 }], [{ name: 'http' }], []],
    ['a slice port numbered 0 is ignored', [{ name: 'http', port: 80 }], [{ name: 'http', port: 0 }], []],
  ];
  for (const [name, servicePorts, slicePorts, expected] of joins) {
    test(name, () => {
      const p = onlyPort([web({ ports: servicePorts }), slice('web', { ports: slicePorts, endpoints: [ep('10.244.1.1')] })]);
      assert.deepEqual(p.internalEndpoints, expected);
    });
  }

  test('each port of a multi-port Service joins its own slice port', () => {
    const ports = jsonOf([
      service('dns', { clusterIP: '10.96.0.10', ports: [{ name: 'dns', protocol: 'UDP', port: 53 }, { name: 'dns-tcp', protocol: 'TCP', port: 53 }] }),
      slice('dns', { ports: [{ name: 'dns-tcp', protocol: 'TCP', port: 5353 }, { name: 'dns', protocol: 'UDP', port: 5354 }], endpoints: [ep('10.244.1.5')] }),
    ]).servicePorts;
    assert.deepEqual(ports.map((p) => [p.portName, p.protocol, p.internalEndpoints]), [
      ['dns', 'UDP', ['10.244.1.5:5354']],
      ['dns-tcp', 'TCP', ['10.244.1.5:5353']],
    ]);
  });

  test('SCTP is a protocol like the others', () => {
    const p = onlyPort([web({ ports: [{ name: 's', protocol: 'SCTP', port: 9 }] }), slice('web', { ports: [{ name: 's', protocol: 'SCTP', port: 99 }], endpoints: [ep('10.244.1.1')] })]);
    assert.deepEqual([p.protocol, p.internalEndpoints], ['SCTP', ['10.244.1.1:99']]);
  });

  const nodePorts: [string, Record<string, unknown>, number | null][] = [
    ['a NodePort Service has its node port', { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, 30080],
    ['a LoadBalancer Service has its node port', { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }, 30080],
    ['a LoadBalancer without allocated node ports has none', { type: 'LoadBalancer', ports: [{ name: 'http', port: 80, nodePort: 0 }] }, null],
    ['a ClusterIP Service has none', {}, null],
  ];
  for (const [name, spec, expected] of nodePorts) {
    test(name, () => assert.equal(onlyPort([web(spec)]).nodePort, expected));
  }

  test('external IPs are kept, sorted and deduplicated, only for the families of the cluster IPs', () => {
    const p = onlyPort([web({ externalIPs: ['192.0.2.9', '192.0.2.10', '2001:db8::1', '192.0.2.9'] })]);
    assert.deepEqual(p.externalIPs, ['192.0.2.10', '192.0.2.9']);
  });

  const ingress: [string, Record<string, unknown>, unknown[], string[]][] = [
    ['a load-balancer VIP is captured', { type: 'LoadBalancer' }, [{ ip: '192.0.2.30' }], ['192.0.2.30']],
    ['ipMode VIP is captured', { type: 'LoadBalancer' }, [{ ip: '192.0.2.30', ipMode: 'VIP' }], ['192.0.2.30']],
    ['ipMode Proxy is not captured (the load balancer delivers to the node)', { type: 'LoadBalancer' }, [{ ip: '192.0.2.30', ipMode: 'Proxy' }], []],
    ['a hostname-only ingress has nothing to capture', { type: 'LoadBalancer' }, [{ hostname: 'lb.example.com' }], []],
    ['an ingress of a family the Service lacks is not captured', { type: 'LoadBalancer' }, [{ ip: '2001:db8::30' }, { ip: '192.0.2.31' }], ['192.0.2.31']],
    ['a stale ingress on a Service that is no longer a LoadBalancer is ignored', { type: 'ClusterIP' }, [{ ip: '192.0.2.30' }], []],
  ];
  for (const [name, spec, entries, expected] of ingress) {
    test(name, () => assert.deepEqual(onlyPort([web(spec, { status: { loadBalancer: { ingress: entries } } })]).loadBalancerIPs, expected));
  }

  test('load-balancer source ranges are kept for the Service\'s families', () => {
    const p = onlyPort([web({ type: 'LoadBalancer', loadBalancerSourceRanges: ['198.51.100.0/24', ' 10.0.0.0/8', '2001:db8::/32'] })]);
    assert.deepEqual(p.loadBalancerSourceRanges, ['10.0.0.0/8', '198.51.100.0/24']);
  });

  const affinity: [string, Record<string, unknown>, number | null][] = [
    ['no affinity by default', {}, null],
    ['sessionAffinity None has no timeout', { sessionAffinity: 'None' }, null],
    ['ClientIP affinity defaults to 10800 seconds', { sessionAffinity: 'ClientIP' }, 10800],
    ['ClientIP affinity with its own timeout', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }, 60],
    ['a timeout without ClientIP affinity means nothing', { sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } } }, null],
  ];
  for (const [name, spec, expected] of affinity) {
    test(name, () => assert.equal(onlyPort([web(spec)]).sessionAffinityTimeoutSeconds, expected));
  }

  const healthChecks: [string, Record<string, unknown>, number | null][] = [
    ['a LoadBalancer with Local policy has a health check port', { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }, 32000],
    ['a LoadBalancer with Cluster policy has none', { type: 'LoadBalancer', healthCheckNodePort: 32000 }, null],
    ['a NodePort with Local policy has none', { type: 'NodePort', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }, null],
  ];
  for (const [name, spec, expected] of healthChecks) {
    test(name, () => assert.equal(onlyPort([web(spec)]).healthCheckNodePort, expected));
  }
});

describe('each family on its own', () => {
  const v4 = slice('web', { name: 'web-v4', endpoints: [ep('10.244.1.1', N1)] });
  const v6 = slice('web', { name: 'web-v6', addressType: 'IPv6', endpoints: [ep('fd00:244::1', N1)] });
  const cases: [string, Record<string, unknown>, KubeObject[], string[]][] = [
    ['an IPv4 cluster IP reaches IPv4 endpoints only', { clusterIP: '10.96.0.1' }, [v4, v6], ['10.244.1.1:8080']],
    ['an IPv6 cluster IP reaches IPv6 endpoints only', { clusterIP: 'fd00:96::1' }, [v4, v6], ['[fd00:244::1]:8080']],
    ['an IPv6-only slice does not serve an IPv4 cluster IP', { clusterIP: '10.96.0.1' }, [v6], []],
    ['a dual-stack Service reaches both, IPv4 first', { clusterIP: 'fd00:96::1', clusterIPs: ['fd00:96::1', '10.96.0.1'] }, [v6, v4], ['10.244.1.1:8080', '[fd00:244::1]:8080']],
  ];
  for (const [name, spec, slices, expected] of cases) {
    test(name, () => assert.deepEqual(onlyPort([web(spec), ...slices]).internalEndpoints, expected));
  }

  test('a dual-stack Service keeps its cluster IPs in the order of spec.clusterIPs', () => {
    assert.deepEqual(onlyPort([web({ clusterIP: 'fd00:96::1', clusterIPs: ['fd00:96::1', '10.96.0.1'] })]).clusterIPs, ['fd00:96::1', '10.96.0.1']);
  });

  test('the terminating fallback is decided per family', () => {
    const p = onlyPort([
      web({ clusterIPs: ['10.96.0.1', 'fd00:96::1'] }),
      slice('web', { name: 'a', endpoints: [ep('10.244.1.1', { ready: false, terminating: true, serving: true }), ep('10.244.1.2', { ready: false })] }),
      slice('web', { name: 'b', addressType: 'IPv6', endpoints: [ep('fd00:244::1'), ep('fd00:244::2', { ready: false, serving: true, terminating: true })] }),
    ]);
    assert.deepEqual(p.clusterEndpoints, ['10.244.1.1:8080', '[fd00:244::1]:8080']);
  });

  test('topology hints are decided per family', () => {
    const p = onlyPort([
      web({ clusterIPs: ['10.96.0.1', 'fd00:96::1'] }),
      slice('web', { name: 'a', endpoints: [ep('10.244.1.1', { zones: ['z1'] }), ep('10.244.1.2', { zones: ['z2'] })] }),
      slice('web', { name: 'b', addressType: 'IPv6', endpoints: [ep('fd00:244::1', { zones: ['z1'] }), ep('fd00:244::2')] }),
    ]);
    assert.deepEqual(p.clusterEndpoints, ['10.244.1.1:8080', '[fd00:244::1]:8080', '[fd00:244::2]:8080']);
  });
});

describe('endpoint conditions', () => {
  const ready = ep('10.244.1.1');
  const cases: [string, Record<string, unknown>[], string[]][] = [
    ['conditions left out mean ready', [ep('10.244.1.1')], ['10.244.1.1:8080']],
    ['ready false is not used', [ep('10.244.1.1', { ready: false })], []],
    ['ready endpoints are used, terminating ones are not while any is ready', [ready, ep('10.244.1.2', { ready: false, serving: true, terminating: true })], ['10.244.1.1:8080']],
    ['with none ready, serving-and-terminating ones are used', [ep('10.244.1.2', { ready: false, serving: true, terminating: true }), ep('10.244.1.3', { ready: false })], ['10.244.1.2:8080']],
    ['terminating but not serving is never used', [ep('10.244.1.2', { ready: false, serving: false, terminating: true })], []],
    ['serving left out follows ready (false), so a not-ready terminating endpoint is not used', [ep('10.244.1.2', { ready: false, terminating: true })], []],
    ['serving but not terminating is not a fallback (it is simply not ready)', [ep('10.244.1.2', { ready: false, serving: true })], []],
    ['ready and terminating (rare) counts as ready', [ep('10.244.1.2', { ready: true, terminating: true })], ['10.244.1.2:8080']],
  ];
  for (const [name, endpoints, expected] of cases) {
    test(name, () => assert.deepEqual(onlyPort([web(), slice('web', { endpoints })]).clusterEndpoints, expected));
  }

  test('the cluster list and the local list fall back separately', () => {
    const objects = [
      web({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
      slice('web', { endpoints: [ep('10.244.2.1', N2), ep('10.244.1.1', { ...N1, ready: false, serving: true, terminating: true })] }),
    ];
    const p = onlyPort(objects);
    assert.deepEqual(p.clusterEndpoints, ['10.244.2.1:8080'], 'remote ready ones serve the cluster');
    assert.deepEqual(p.externalEndpoints, ['10.244.1.1:8080'], 'the only local one is terminating: the local list falls back to it');
    assert.deepEqual(p.internalEndpoints, ['10.244.2.1:8080']);
  });

  test('the local list prefers local ready endpoints over local terminating ones', () => {
    const p = onlyPort([
      web({ internalTrafficPolicy: 'Local' }),
      slice('web', { endpoints: [ep('10.244.1.1', N1), ep('10.244.1.2', { ...N1, ready: false, serving: true, terminating: true }), ep('10.244.2.1', N2)] }),
    ]);
    assert.deepEqual(p.internalEndpoints, ['10.244.1.1:8080']);
  });

  test('the cluster list falls back while the local list has a ready endpoint', () => {
    const p = onlyPort([
      web({ internalTrafficPolicy: 'Local' }),
      slice('web', { endpoints: [ep('10.244.1.1', { ...N1, ready: false, serving: true, terminating: true }), ep('10.244.2.1', { ...N2, ready: false, serving: true, terminating: true })] }),
    ]);
    assert.deepEqual(p.clusterEndpoints, ['10.244.1.1:8080', '10.244.2.1:8080']);
    assert.deepEqual(p.internalEndpoints, ['10.244.1.1:8080']);
  });
});

describe('topology hints', () => {
  const cases: [string, Record<string, unknown>[], string | undefined, string[]][] = [
    ['every endpoint hinted and one for this zone: only this zone\'s', [ep('10.244.1.1', { zones: ['z1'] }), ep('10.244.1.2', { zones: ['z2'] })], 'z1', ['10.244.1.1:8080']],
    ['an endpoint hinted for several zones counts for each', [ep('10.244.1.1', { zones: ['z2', 'z1'] }), ep('10.244.1.2', { zones: ['z2'] })], 'z1', ['10.244.1.1:8080']],
    ['one endpoint without a hint: hints ignored', [ep('10.244.1.1', { zones: ['z1'] }), ep('10.244.1.2')], 'z1', ['10.244.1.1:8080', '10.244.1.2:8080']],
    ['no endpoint for this zone: hints ignored', [ep('10.244.1.1', { zones: ['z2'] }), ep('10.244.1.2', { zones: ['z3'] })], 'z1', ['10.244.1.1:8080', '10.244.1.2:8080']],
    ['a node without a zone label: hints ignored', [ep('10.244.1.1', { zones: ['z1'] }), ep('10.244.1.2', { zones: ['z2'] })], undefined, ['10.244.1.1:8080', '10.244.1.2:8080']],
    ['a not-ready endpoint without a hint does not matter', [ep('10.244.1.1', { zones: ['z1'] }), ep('10.244.1.2', { zones: ['z2'] }), ep('10.244.1.3', { ready: false })], 'z1', ['10.244.1.1:8080']],
    [
      'falling back to terminating endpoints ignores hints',
      [ep('10.244.1.1', { zones: ['z1'], ready: false, serving: true, terminating: true }), ep('10.244.1.2', { zones: ['z2'], ready: false, serving: true, terminating: true })],
      'z1',
      ['10.244.1.1:8080', '10.244.1.2:8080'],
    ],
  ];
  for (const [name, endpoints, zone, expected] of cases) {
    test(name, () => {
      assert.deepEqual(onlyPort([web(), slice('web', { endpoints })], { node: { zone } }).clusterEndpoints, expected);
    });
  }

  test('hints apply to Cluster policies only: a Local list keeps every local endpoint', () => {
    const p = onlyPort([
      web({ type: 'NodePort', externalTrafficPolicy: 'Local', ports: [{ name: 'http', port: 80, nodePort: 30080 }] }),
      slice('web', { endpoints: [ep('10.244.1.1', { ...N1, zones: ['z2'] }), ep('10.244.1.2', { ...N2, zones: ['z1'] })] }),
    ]);
    assert.deepEqual(p.internalEndpoints, ['10.244.1.2:8080']);
    assert.deepEqual(p.externalEndpoints, ['10.244.1.1:8080']);
  });
});

describe('traffic policies', () => {
  const endpoints = [ep('10.244.1.1', N1), ep('10.244.2.1', N2), ep('10.244.2.2')];
  const nodePort = { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 30080 }] };
  const cases: [string, Record<string, unknown>, { internal: string[]; external: string[]; etp: string; itp: string }][] = [
    ['Cluster by default: every endpoint for both', nodePort, { internal: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], external: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], etp: 'Cluster', itp: 'Cluster' }],
    ['externalTrafficPolicy Local: external traffic to local endpoints only', { ...nodePort, externalTrafficPolicy: 'Local' }, { internal: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], external: ['10.244.1.1:8080'], etp: 'Local', itp: 'Cluster' }],
    ['legacy Global is Cluster', { ...nodePort, externalTrafficPolicy: 'Global' }, { internal: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], external: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], etp: 'Cluster', itp: 'Cluster' }],
    ['internalTrafficPolicy Local: ClusterIP traffic to local endpoints only', { ...nodePort, internalTrafficPolicy: 'Local' }, { internal: ['10.244.1.1:8080'], external: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], etp: 'Cluster', itp: 'Local' }],
    ['both Local', { ...nodePort, internalTrafficPolicy: 'Local', externalTrafficPolicy: 'Local' }, { internal: ['10.244.1.1:8080'], external: ['10.244.1.1:8080'], etp: 'Local', itp: 'Local' }],
    ['externalTrafficPolicy Local on a ClusterIP Service without external IPs means nothing', { externalTrafficPolicy: 'Local' }, { internal: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], external: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], etp: 'Cluster', itp: 'Cluster' }],
    ['externalTrafficPolicy Local applies to a ClusterIP Service\'s external IPs', { externalTrafficPolicy: 'Local', externalIPs: ['192.0.2.1'] }, { internal: ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], external: ['10.244.1.1:8080'], etp: 'Local', itp: 'Cluster' }],
  ];
  for (const [name, spec, want] of cases) {
    test(name, () => {
      const p = onlyPort([web(spec), slice('web', { endpoints })]);
      assert.deepEqual({ internal: p.internalEndpoints, external: p.externalEndpoints, etp: p.externalTrafficPolicy, itp: p.internalTrafficPolicy }, want);
      assert.deepEqual(p.clusterEndpoints, ['10.244.1.1:8080', '10.244.2.1:8080', '10.244.2.2:8080'], 'short-circuit list');
    });
  }

  test('backends say which are local', () => {
    const p = mapOf([web(), slice('web', { endpoints })]).servicePorts[0];
    assert.deepEqual(p?.clusterEndpoints.map((b) => b.local), [true, false, false]);
  });

  const actions: [string, Record<string, unknown>, Record<string, unknown>[], 'forward' | 'reject' | 'drop'][] = [
    ['no endpoint at all: reject', { ...nodePort, externalTrafficPolicy: 'Local' }, [], 'reject'],
    ['Local policy and none on this node: drop', { ...nodePort, externalTrafficPolicy: 'Local' }, [ep('10.244.2.1', N2)], 'drop'],
    ['only unusable endpoints: reject', { ...nodePort, externalTrafficPolicy: 'Local' }, [ep('10.244.1.1', { ...N1, ready: false })], 'reject'],
    ['a local one: forward', { ...nodePort, externalTrafficPolicy: 'Local' }, [ep('10.244.1.1', N1)], 'forward'],
  ];
  for (const [name, spec, eps, action] of actions) {
    test(`external traffic with ${name}`, () => {
      const p = mapOf([web(spec), slice('web', { endpoints: eps })]).servicePorts[0];
      assert.ok(p);
      assert.equal(noEndpointAction(p, p.externalEndpoints), action);
    });
  }
});

describe('skipped Services', () => {
  const cases: [string, KubeObject, number][] = [
    ['a headless Service', web({ clusterIP: 'None' }), 0],
    ['a headless Service by clusterIPs', web({ clusterIP: undefined, clusterIPs: ['None'] }), 0],
    ['an ExternalName Service', web({ type: 'ExternalName', clusterIP: undefined, externalName: 'example.com' }), 0],
    ['a Service whose cluster IP is not allocated yet', web({ clusterIP: undefined }), 0],
    ['a Service for another proxy', web({}, { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } }), 0],
    ['a Service naming this proxy is kept', web({}, { labels: { 'service.kubernetes.io/service-proxy-name': 'wirelane' } }), 1],
    ['a Service without the label is kept', web(), 1],
  ];
  for (const [name, svc, count] of cases) {
    test(`${name}: ${count === 0 ? 'skipped' : 'kept'}`, () => {
      assert.equal(mapOf([svc, slice('web', { endpoints: [ep('10.244.1.1')] })]).servicePorts.length, count);
    });
  }

  test('the proxy name is an option', () => {
    const svc = web({}, { labels: { 'service.kubernetes.io/service-proxy-name': 'other' } });
    assert.equal(mapOf([svc], { opts: { proxyName: 'other' } }).servicePorts.length, 1);
  });
});

describe('slices of one Service', () => {
  test('several slices are merged', () => {
    const p = onlyPort([web(), slice('web', { name: 'a', endpoints: [ep('10.244.1.2')] }), slice('web', { name: 'b', endpoints: [ep('10.244.1.1')] })]);
    assert.deepEqual(p.internalEndpoints, ['10.244.1.1:8080', '10.244.1.2:8080']);
  });

  test('the same ip:port in two slices counts once', () => {
    const p = onlyPort([web(), slice('web', { name: 'a', endpoints: [ep('10.244.1.1')] }), slice('web', { name: 'b', endpoints: [ep('10.244.1.1'), ep('10.244.1.2')] })]);
    assert.deepEqual(p.internalEndpoints, ['10.244.1.1:8080', '10.244.1.2:8080']);
  });

  test('the same IP on different ports in two slices counts twice', () => {
    const p = onlyPort([
      web(),
      slice('web', { name: 'a', endpoints: [ep('10.244.1.1')] }),
      slice('web', { name: 'b', ports: [{ name: 'http', port: 9090 }], endpoints: [ep('10.244.1.1')] }),
    ]);
    assert.deepEqual(p.internalEndpoints, ['10.244.1.1:8080', '10.244.1.1:9090']);
  });

  const duplicates: [string, Record<string, unknown>, Record<string, unknown>, string[]][] = [
    ['a local copy wins over a remote one', ep('10.244.1.1', N2), ep('10.244.1.1', N1), ['10.244.1.1:8080 local']],
    ['a ready copy wins over a not-ready one', ep('10.244.1.1', { ready: false }), ep('10.244.1.1'), ['10.244.1.1:8080 remote']],
  ];
  for (const [name, first, second, expected] of duplicates) {
    test(`${name}, whichever slice comes first`, () => {
      for (const [a, b] of [[first, second], [second, first]] as const) {
        const p = mapOf([web(), slice('web', { name: 'a', endpoints: [a] }), slice('web', { name: 'b', endpoints: [b] })]).servicePorts[0];
        assert.deepEqual(p?.clusterEndpoints.map((e) => `${formatBackend(e)} ${e.local ? 'local' : 'remote'}`), expected);
      }
    });
  }

  test('a slice of a same-named Service in another namespace is not joined', () => {
    const p = onlyPort([web(), slice('web', { namespace: 'other', endpoints: [ep('10.244.1.1')] })]);
    assert.deepEqual(p.internalEndpoints, []);
  });

  test('a Service without slices has a port with no endpoints', () => {
    const p = onlyPort([web()]);
    assert.deepEqual([p.clusterEndpoints, p.internalEndpoints, p.externalEndpoints], [[], [], []]);
  });

  test('only an endpoint\'s first address is used, as kube-proxy does', () => {
    const p = onlyPort([web(), slice('web', { endpoints: [{ addresses: ['10.244.1.1', '10.244.1.9'] }] })]);
    assert.deepEqual(p.internalEndpoints, ['10.244.1.1:8080']);
  });

  test('an FQDN slice is skipped', () => {
    const p = onlyPort([web(), slice('web', { addressType: 'FQDN', endpoints: [{ addresses: ['example.com'] }] })]);
    assert.deepEqual(p.internalEndpoints, []);
  });
});

describe('node port addresses', () => {
  const addresses = ['192.168.0.1', '127.0.0.1', '10.0.0.1', '::1', 'fd00::1', '192.168.0.1'].map(parseIp);
  const cases: [string, string[] | undefined, string[]][] = [
    ['all of the node\'s addresses by default, never loopback', undefined, ['10.0.0.1', '192.168.0.1', 'fd00::1']],
    ['an empty list is the default', [], ['10.0.0.1', '192.168.0.1', 'fd00::1']],
    ['narrowed by --nodeport-addresses', ['192.168.0.0/16'], ['192.168.0.1']],
    ['several prefixes of both families', ['10.0.0.0/8', 'fd00::/8'], ['10.0.0.1', 'fd00::1']],
    ['never loopback, even when a prefix includes it (CVE-2020-8558)', ['127.0.0.0/8', '::1/128', '0.0.0.0/0'], ['10.0.0.1', '192.168.0.1']],
  ];
  for (const [name, cidrs, expected] of cases) {
    test(name, () => {
      const spec = { node: { addresses }, ...(cidrs && { opts: { nodePortCIDRs: cidrs.map(parseCidr) } }) };
      assert.deepEqual(jsonOf([], spec).nodePortAddresses, expected);
    });
  }
});

describe('determinism', () => {
  const objects = [
    service('b', { clusterIP: '10.96.0.2', ports: [{ name: 'z', port: 1 }, { name: 'a', protocol: 'UDP', port: 2 }, { name: 'a-tcp', port: 2 }] }),
    service('a', { clusterIP: '10.96.0.1', ports: [{ port: 1 }] }, { namespace: 'zz' }),
    service('a', { clusterIP: '10.96.0.3', ports: [{ port: 1 }] }),
    slice('b', { ports: [{ name: 'z', port: 9 }], endpoints: [ep('10.244.1.10'), ep('10.244.1.9'), ep('10.244.1.100')] }),
  ];

  test('service ports are sorted by service, port name, then protocol', () => {
    const keys = jsonOf(objects).servicePorts.map((p) => `${p.service}:${p.portName}/${p.protocol}`);
    assert.deepEqual(keys, ['default/a:/TCP', 'default/b:a/UDP', 'default/b:a-tcp/TCP', 'default/b:z/TCP', 'zz/a:/TCP']);
  });

  test('endpoints are sorted by address in the map and as strings in JSON', () => {
    const map = mapOf(objects);
    const port = map.servicePorts.find((p) => p.portName === 'z');
    assert.deepEqual(port?.clusterEndpoints.map((b) => b.ip.value & 0xffn), [9n, 10n, 100n]);
    const json = serviceMapToJSON(map).servicePorts.find((p) => p.portName === 'z');
    assert.deepEqual(json?.internalEndpoints, ['10.244.1.100:9', '10.244.1.10:9', '10.244.1.9:9']);
  });

  test('the same objects in any order give the same map', () => {
    const expected = JSON.stringify(jsonOf(objects));
    for (const order of [[...objects].reverse(), [objects[2], objects[0], objects[3], objects[1]]]) {
      assert.equal(JSON.stringify(jsonOf(order as KubeObject[])), expected);
    }
  });

  test('cluster CIDRs are sorted and deduplicated', () => {
    assert.deepEqual(jsonOf([], { clusterCIDRs: ['fd00::/64', '10.244.2.0/24', '10.244.1.0/24', '10.244.2.0/24'] }).clusterCIDRs, ['10.244.1.0/24', '10.244.2.0/24', 'fd00::/64']);
  });

  test('computing does not modify its input', () => {
    const input = { ...decodeAll([...objects, slice('b', { name: 'b-0', ports: [{ name: 'z', port: 9 }], endpoints: [ep('10.244.1.1')] })]), node: NODE, clusterCIDRs: [] };
    const copy = structuredClone(input);
    computeServiceMap(input, { proxyName: PROXY_NAME });
    assert.deepEqual(input, copy);
  });
});
