import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatCidr, formatIp } from '../../src/model/ip.js';
import type { Service } from '../../src/services/input.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { InvalidObjectError } from '../../src/sources/problem.js';
import { decodeService } from '../../src/sources/service.js';

const obj = (spec: Record<string, unknown>, extra: Record<string, unknown> = {}): KubeObject =>
  ({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec, ...extra }) as KubeObject;
const basic = { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80 }] };

/** The decoded Service with addresses as strings, for readable expectations. */
function decoded(o: KubeObject): Record<string, unknown> {
  const s: Service = decodeService(o);
  return {
    ...s,
    clusterIPs: s.clusterIPs.map(formatIp),
    externalIPs: s.externalIPs.map(formatIp),
    loadBalancerSourceRanges: s.loadBalancerSourceRanges.map(formatCidr),
    loadBalancerIngress: s.loadBalancerIngress.map((i) => `${formatIp(i.ip)} ${i.ipMode}`),
  };
}

describe('decodeService', () => {
  test('a minimal Service gets the API server\'s defaults', () => {
    assert.deepEqual(decoded(obj(basic)), {
      namespace: 'shop',
      name: 'web',
      type: 'ClusterIP',
      headless: false,
      clusterIPs: ['10.96.0.1'],
      ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
      externalIPs: [],
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      loadBalancerSourceRanges: [],
      loadBalancerIngress: [],
    });
  });

  test('every field of a LoadBalancer Service', () => {
    const d = decoded(
      obj(
        {
          type: 'LoadBalancer',
          clusterIP: 'fd00::1',
          clusterIPs: ['fd00::1', '10.96.0.1'],
          ports: [{ name: 'dns', protocol: 'UDP', port: 53, targetPort: 'dns', nodePort: 30053 }, { name: 'dns-tcp', protocol: 'TCP', port: 53, nodePort: 30054 }],
          externalIPs: ['192.0.2.1'],
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 300 } },
          externalTrafficPolicy: 'Local',
          internalTrafficPolicy: 'Local',
          healthCheckNodePort: 32000,
          loadBalancerSourceRanges: ['198.51.100.0/24'],
        },
        {
          metadata: { name: 'dns', labels: { 'service.kubernetes.io/service-proxy-name': 'wirelane' } },
          status: { loadBalancer: { ingress: [{ ip: '192.0.2.30' }, { ip: '192.0.2.31', ipMode: 'Proxy' }, { hostname: 'lb.example.com' }] } },
        },
      ),
    );
    assert.deepEqual(d, {
      namespace: 'default',
      name: 'dns',
      type: 'LoadBalancer',
      headless: false,
      clusterIPs: ['fd00::1', '10.96.0.1'],
      ports: [{ name: 'dns', protocol: 'UDP', port: 53, nodePort: 30053 }, { name: 'dns-tcp', protocol: 'TCP', port: 53, nodePort: 30054 }],
      externalIPs: ['192.0.2.1'],
      sessionAffinityTimeoutSeconds: 300,
      externalTrafficPolicy: 'Local',
      internalTrafficPolicy: 'Local',
      healthCheckNodePort: 32000,
      loadBalancerSourceRanges: ['198.51.100.0/24'],
      loadBalancerIngress: ['192.0.2.30 VIP', '192.0.2.31 Proxy'],
      proxyName: 'wirelane',
    });
  });

  const accepted: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ['clusterIP None is headless', { clusterIP: 'None', ports: [] }, { headless: true, clusterIPs: [] }],
    ['clusterIPs [None] is headless', { clusterIPs: ['None'] }, { headless: true, clusterIPs: [] }],
    ['no cluster IP yet is not headless', { ports: [] }, { headless: false, clusterIPs: [] }],
    ['clusterIPs alone', { clusterIPs: ['10.96.0.1'] }, { clusterIPs: ['10.96.0.1'] }],
    ['legacy externalTrafficPolicy Global is Cluster', { ...basic, externalTrafficPolicy: 'Global' }, { externalTrafficPolicy: 'Cluster' }],
    ['an empty policy is the default', { ...basic, externalTrafficPolicy: '', internalTrafficPolicy: '' }, { externalTrafficPolicy: 'Cluster', internalTrafficPolicy: 'Cluster' }],
    ['ClientIP affinity defaults to 10800 seconds', { ...basic, sessionAffinity: 'ClientIP' }, { sessionAffinityTimeoutSeconds: 10800 }],
    ['ClientIP affinity of 86400 seconds (the maximum)', { ...basic, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 86400 } } }, { sessionAffinityTimeoutSeconds: 86400 }],
    ['nodePort 0 is none', { ...basic, type: 'NodePort', ports: [{ port: 80, nodePort: 0 }] }, { ports: [{ name: '', protocol: 'TCP', port: 80 }] }],
    ['healthCheckNodePort 0 is none', { ...basic, healthCheckNodePort: 0 }, { healthCheckNodePort: undefined }],
    ['source ranges are trimmed', { ...basic, loadBalancerSourceRanges: [' 10.0.0.0/8 '] }, { loadBalancerSourceRanges: ['10.0.0.0/8'] }],
    ['an ExternalName Service without a cluster IP', { type: 'ExternalName', externalName: 'example.com' }, { type: 'ExternalName', clusterIPs: [] }],
  ];
  for (const [name, spec, want] of accepted) {
    test(name, () => {
      const d = decoded(obj(spec));
      for (const [key, value] of Object.entries(want)) assert.deepEqual(d[key], value, key);
    });
  }

  test('metadata.namespace defaults to "default"', () => {
    assert.equal(decodeService({ metadata: { name: 'x' }, spec: basic }).namespace, 'default');
  });

  const rejected: [string, KubeObject, string][] = [
    ['no name', { metadata: { namespace: 'shop' }, spec: basic }, 'Service "shop/": metadata.name: missing'],
    ['no spec', { metadata: { name: 'web', namespace: 'shop' } }, 'Service "shop/web": spec: missing'],
    ['labels that are not strings', obj(basic, { metadata: { name: 'web', namespace: 'shop', labels: { a: 1 } } }), 'Service "shop/web": metadata.labels: not a map of strings'],
    ['an unknown type', obj({ ...basic, type: 'Magic' }), 'Service "shop/web": spec.type: "Magic" is not one of ClusterIP, NodePort, LoadBalancer, ExternalName'],
    ['a bad cluster IP', obj({ clusterIP: '10.96.0.300' }), 'Service "shop/web": spec.clusterIP: "10.96.0.300" is not an IP address'],
    ['a bad entry of clusterIPs', obj({ clusterIPs: ['10.96.0.1', 'fd00::x'] }), 'Service "shop/web": spec.clusterIPs[1]: "fd00::x" is not an IP address'],
    ['two cluster IPs of one family', obj({ clusterIPs: ['10.96.0.1', '10.96.0.2'] }), 'Service "shop/web": spec.clusterIPs[1]: "10.96.0.2" is of the same IP family as spec.clusterIPs[0]'],
    ['three cluster IPs', obj({ clusterIPs: ['10.96.0.1', 'fd00::1', '10.96.0.2'] }), 'Service "shop/web": spec.clusterIPs: more than one address per IP family'],
    ['clusterIP differing from clusterIPs[0]', obj({ clusterIP: '10.96.0.2', clusterIPs: ['10.96.0.1'] }), 'Service "shop/web": spec.clusterIP: "10.96.0.2" is not spec.clusterIPs[0] ("10.96.0.1")'],
    ['None with another cluster IP', obj({ clusterIPs: ['None', '10.96.0.1'] }), 'Service "shop/web": spec.clusterIPs: None must be the only entry'],
    ['ports that are not a list', obj({ clusterIP: '10.96.0.1', ports: { port: 80 } }), 'Service "shop/web": spec.ports: {"port":80} is not a list'],
    ['a port without a number', obj({ clusterIP: '10.96.0.1', ports: [{ name: 'http' }] }), 'Service "shop/web": spec.ports[0].port: missing'],
    ['a port out of range', obj({ clusterIP: '10.96.0.1', ports: [{ port: 70000 }] }), 'Service "shop/web": spec.ports[0].port: 70000 is not a port (1-65535)'],
    ['a port number as a string', obj({ clusterIP: '10.96.0.1', ports: [{ port: '80' }] }), 'Service "shop/web": spec.ports[0].port: "80" is not a port (1-65535)'],
    ['a port of 0', obj({ clusterIP: '10.96.0.1', ports: [{ port: 0 }] }), 'Service "shop/web": spec.ports[0].port: 0 is not a port (1-65535)'],
    ['an unknown protocol', obj({ clusterIP: '10.96.0.1', ports: [{ port: 80, protocol: 'ICMP' }] }), 'Service "shop/web": spec.ports[0].protocol: "ICMP" is not one of TCP, UDP, SCTP'],
    ['a lower-case protocol', obj({ clusterIP: '10.96.0.1', ports: [{ port: 80, protocol: 'tcp' }] }), 'Service "shop/web": spec.ports[0].protocol: "tcp" is not one of TCP, UDP, SCTP'],
    ['duplicate port names', obj({ clusterIP: '10.96.0.1', ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] }), 'Service "shop/web": spec.ports[1].name: "a" is also the name of spec.ports[0]'],
    ['a port name that would break a rule', obj({ clusterIP: '10.96.0.1', ports: [{ name: 'x" ! -s 0.0.0.0/0 -m comment --comment "y', port: 80 }] }), 'Service "shop/web": spec.ports[0].name: "x\\" ! -s 0.0.0.0/0 -m comment --comment \\"y" is not a DNS label (a-z, 0-9 and \'-\', at most 63)'],
    ['an upper-case port name', obj({ clusterIP: '10.96.0.1', ports: [{ name: 'HTTP', port: 80 }] }), 'Service "shop/web": spec.ports[0].name: "HTTP" is not a DNS label (a-z, 0-9 and \'-\', at most 63)'],
    ['a name that is not a DNS subdomain', { metadata: { name: 'web"', namespace: 'shop' }, spec: basic }, 'Service "shop/web"": metadata.name: "web"" is not a DNS subdomain (a-z, 0-9, \'-\' and \'.\')'],
    ['a namespace that is not a DNS label', { metadata: { name: 'web', namespace: 'a b' }, spec: basic }, 'Service "a b/web": metadata.namespace: not a DNS label (a-z, 0-9 and \'-\', at most 63)'],
    ['an unnamed port among several', obj({ clusterIP: '10.96.0.1', ports: [{ name: 'a', port: 80 }, { port: 81 }] }), 'Service "shop/web": spec.ports[1].name: missing (every port of a multi-port Service needs one)'],
    ['the same port and protocol twice', obj({ clusterIP: '10.96.0.1', ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80, protocol: 'TCP' }] }), 'Service "shop/web": spec.ports[1]: 80/TCP is also spec.ports[0]'],
    ['a bad node port', obj({ ...basic, type: 'NodePort', ports: [{ port: 80, nodePort: 99999 }] }), 'Service "shop/web": spec.ports[0].nodePort: 99999 is not a port (1-65535)'],
    ['a node port on a ClusterIP Service', obj({ ...basic, ports: [{ port: 80, nodePort: 30080 }] }), 'Service "shop/web": spec.ports[0].nodePort: not allowed for type ClusterIP'],
    ['a bad external IP', obj({ ...basic, externalIPs: ['192.0.2.1', 'example.com'] }), 'Service "shop/web": spec.externalIPs[1]: "example.com" is not an IP address'],
    ['an unknown affinity', obj({ ...basic, sessionAffinity: 'Cookie' }), 'Service "shop/web": spec.sessionAffinity: "Cookie" is not one of None, ClientIP'],
    ['an affinity timeout of 0', obj({ ...basic, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }), 'Service "shop/web": spec.sessionAffinityConfig.clientIP.timeoutSeconds: 0 is not a timeout in seconds (1-86400)'],
    ['an affinity timeout over a day', obj({ ...basic, sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 86401 } } }), 'Service "shop/web": spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is not a timeout in seconds (1-86400)'],
    ['an unknown external policy', obj({ ...basic, externalTrafficPolicy: 'Nearest' }), 'Service "shop/web": spec.externalTrafficPolicy: "Nearest" is not one of Cluster, Local, Global'],
    ['an unknown internal policy', obj({ ...basic, internalTrafficPolicy: 'Global' }), 'Service "shop/web": spec.internalTrafficPolicy: "Global" is not one of Cluster, Local'],
    ['a bad health check port', obj({ ...basic, healthCheckNodePort: -1 }), 'Service "shop/web": spec.healthCheckNodePort: -1 is not a port (1-65535)'],
    ['a bad source range', obj({ ...basic, loadBalancerSourceRanges: ['10.0.0.0/33'] }), 'Service "shop/web": spec.loadBalancerSourceRanges[0]: "10.0.0.0/33" is not a CIDR (bad prefix length)'],
    ['a bad ingress IP', obj(basic, { status: { loadBalancer: { ingress: [{ ip: '1.2.3' }] } } }), 'Service "shop/web": status.loadBalancer.ingress[0].ip: "1.2.3" is not an IP address'],
    ['an unknown ipMode', obj(basic, { status: { loadBalancer: { ingress: [{ ip: '192.0.2.1', ipMode: 'Tunnel' }] } } }), 'Service "shop/web": status.loadBalancer.ingress[0].ipMode: "Tunnel" is not one of VIP, Proxy'],
  ];
  for (const [name, o, message] of rejected) {
    test(`rejects ${name}`, () => {
      assert.throws(() => decodeService(o), (err: unknown) => {
        assert.ok(err instanceof InvalidObjectError);
        assert.equal(err.message, message);
        assert.equal(err.problem.kind, 'Service');
        return true;
      });
    });
  }
});
