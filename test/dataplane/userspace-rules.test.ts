// The userspace proxy's plan (which proxy sockets, which frontends) and its portal rules, pure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type FamilyRules, validateFamilyRules, WIRELANE_OWNER } from '../../src/dataplane/iptables/ruleset.js';
import { SERVICE_OWNER } from '../../src/dataplane/service-iptables/chain-names.js';
import {
  NODEPORT_ACCEPT_CHAIN,
  NODEPORT_CONTAINER_CHAIN,
  NODEPORT_HOST_CHAIN,
  nodePortClaimKey,
  PORTALS_CONTAINER_CHAIN,
  PORTALS_HOST_CHAIN,
  type PortalInput,
  portalRules,
  SERVICES_FILTER_CHAIN,
  USERSPACE_OWNER,
} from '../../src/dataplane/userspace/portal-rules.js';
import { planProxies, proxyKey } from '../../src/dataplane/userspace/proxy-plan.js';
import { type Family, type Ip, parseCidr, parseIp } from '../../src/model/ip.js';
import type { ServiceBackend, ServiceMap, ServicePort } from '../../src/model/service.js';
import { serviceMap as sharedServiceMap, servicePort } from '../support/service-map.js';

const ep = (ip: string, local = false, port = 8080): ServiceBackend => ({ ip: parseIp(ip), port, local });

// Loopback node addresses too: the portals must leave them out (CVE-2020-8558).
const serviceMap = (...ports: ServicePort[]): ServiceMap =>
  sharedServiceMap(ports, { nodePortAddresses: [parseIp('172.31.0.11'), parseIp('127.0.0.1'), parseIp('fd31::11'), parseIp('::1')] });

/** Every planned proxy bound, on ports 40000, 40001, ... in plan order; every NodePort held by its first wanter. */
function inputFor(map: ServiceMap, over: Partial<PortalInput> = {}): PortalInput {
  const plan = planProxies(map);
  const holders = new Map<string, string>();
  for (const w of plan.nodePorts) {
    const key = nodePortClaimKey(w.protocol, w.family, w.port);
    if (!holders.has(key)) holders.set(key, w.servicePort);
  }
  return {
    plan,
    ports: new Map(plan.proxies.map((p, i) => [p.key, 40000 + i] as const)),
    nodePortHolders: holders,
    clusterCIDRs: map.clusterCIDRs,
    hostAddresses: new Map<Family, Ip>([[4, parseIp('172.31.0.11')], [6, parseIp('fd31::11')]]),
    listenAddresses: new Map(),
    ...over,
  };
}

function chain(rules: FamilyRules | undefined, name: string): readonly string[] {
  const found = rules?.chains.find((c) => c.name === name);
  assert.ok(found, `chain ${name}`);
  return found.rules;
}

test('the owner shares no prefix with the mesh or the iptables proxier, and every chain name fits the kernel', () => {
  for (const other of [WIRELANE_OWNER, SERVICE_OWNER]) {
    for (const [a, b] of [[USERSPACE_OWNER, other], [other, USERSPACE_OWNER]] as const) {
      assert.ok(!a.chainPrefix.startsWith(b.chainPrefix) && !a.commentPrefix.startsWith(b.commentPrefix), `${a.chainPrefix} / ${b.chainPrefix}`);
    }
  }
  const clusterIPs = [parseIp('10.96.0.10'), parseIp('fd96::10')];
  const map = serviceMap(servicePort({ service: 'default/web', clusterIPs, nodePort: 30080, externalIPs: [parseIp('192.0.2.10')], externalPolicyLocal: true }));
  const rules = portalRules(inputFor(map));
  for (const family of [4, 6] as const) validateFamilyRules(family, rules[family] ?? { chains: [], jumps: [] }, USERSPACE_OWNER);
  assert.equal(rules[6]?.chains.length, 6);
});

test('a ClusterIP port gets one internal proxy: REDIRECT from pods, DNAT to the host address from the host', () => {
  const map = serviceMap(servicePort({ service: 'default/web' }));
  const input = inputFor(map);
  assert.deepEqual(input.plan.proxies.map((p) => p.key), ['default/web:http/TCP internal IPv4']);
  const rules = portalRules(input);
  assert.equal(rules[6], undefined, 'no IPv6 rules for an IPv4-only service');
  const match = '-m comment --comment "default/web:http/TCP clusterIP" -p tcp -d 10.96.0.10/32 --dport 80';
  assert.deepEqual(chain(rules[4], PORTALS_CONTAINER_CHAIN), [`${match} -j REDIRECT --to-ports 40000`]);
  assert.deepEqual(chain(rules[4], PORTALS_HOST_CHAIN), [`${match} -j DNAT --to-destination 172.31.0.11:40000`]);
  assert.deepEqual(chain(rules[4], SERVICES_FILTER_CHAIN), []);
  assert.deepEqual(
    rules[4]?.jumps.map((j) => `${j.table} ${j.from} -> ${j.to} ${j.match ?? ''}`.trim()),
    [
      `nat PREROUTING -> ${PORTALS_CONTAINER_CHAIN}`,
      `nat PREROUTING -> ${NODEPORT_CONTAINER_CHAIN}`,
      `nat OUTPUT -> ${PORTALS_HOST_CHAIN}`,
      `nat OUTPUT -> ${NODEPORT_HOST_CHAIN}`,
      `filter INPUT -> ${SERVICES_FILTER_CHAIN} -m conntrack --ctstate NEW`,
      `filter INPUT -> ${NODEPORT_ACCEPT_CHAIN} -m conntrack --ctstate NEW`,
      `filter FORWARD -> ${SERVICES_FILTER_CHAIN} -m conntrack --ctstate NEW`,
      `filter OUTPUT -> ${SERVICES_FILTER_CHAIN} -m conntrack --ctstate NEW`,
    ],
  );
});

test('NodePort and external IPs (Cluster policy) share one external proxy; NodePorts on non-loopback node addresses only', () => {
  const map = serviceMap(servicePort({ service: 'default/web', nodePort: 30080, externalIPs: [parseIp('192.0.2.10')], loadBalancerIPs: [parseIp('192.0.2.20')] }));
  const input = inputFor(map);
  assert.deepEqual(input.plan.proxies.map((p) => p.kind), ['internal', 'external']);
  const rules = portalRules(input);
  const portals = chain(rules[4], PORTALS_CONTAINER_CHAIN);
  assert.deepEqual(portals.slice(1), [
    '-m comment --comment "default/web:http/TCP externalIP" -p tcp -d 192.0.2.10/32 --dport 80 -j REDIRECT --to-ports 40001',
    '-m comment --comment "default/web:http/TCP loadBalancerIP" -p tcp -d 192.0.2.20/32 --dport 80 -j REDIRECT --to-ports 40001',
  ]);
  assert.deepEqual(chain(rules[4], NODEPORT_CONTAINER_CHAIN), [
    '-m comment --comment "default/web:http/TCP nodePort" -p tcp -d 172.31.0.11/32 --dport 30080 -j REDIRECT --to-ports 40001',
  ]);
  assert.deepEqual(chain(rules[4], NODEPORT_HOST_CHAIN), [
    '-m comment --comment "default/web:http/TCP nodePort" -p tcp -d 172.31.0.11/32 --dport 30080 -j DNAT --to-destination 172.31.0.11:40001',
  ]);
  assert.deepEqual(chain(rules[4], NODEPORT_ACCEPT_CHAIN), ['-p tcp --dport 40001 -j ACCEPT']);
});

test('externalTrafficPolicy Local: outside traffic to the local endpoints, pods and the host short-circuit to all', () => {
  const all = [ep('10.244.1.2', true), ep('10.244.2.2')];
  const map = serviceMap(servicePort({ service: 'default/web', nodePort: 30080, externalPolicyLocal: true, clusterEndpoints: all, externalEndpoints: [all[0] as ServiceBackend] }));
  const input = inputFor(map);
  const [internal, external, shortCircuit] = input.plan.proxies;
  assert.deepEqual([internal?.kind, external?.kind, shortCircuit?.kind], ['internal', 'external', 'shortCircuit']);
  assert.equal(external?.endpoints.length, 1);
  assert.equal(shortCircuit?.endpoints.length, 2);
  const match = '-m comment --comment "default/web:http/TCP nodePort" -p tcp -d 172.31.0.11/32 --dport 30080';
  const rules = portalRules(input);
  assert.deepEqual(chain(rules[4], NODEPORT_CONTAINER_CHAIN), [
    `-s 10.244.0.0/16 ${match} -j REDIRECT --to-ports 40002`,
    `${match} -j REDIRECT --to-ports 40001`,
  ]);
  assert.deepEqual(chain(rules[4], NODEPORT_HOST_CHAIN), [`${match} -j DNAT --to-destination 172.31.0.11:40002`]);
});

test('no endpoint at all: no portal, REJECT; a Local policy without a local endpoint: DROP from outside only', () => {
  const none = servicePort({ service: 'default/empty', nodePort: 30081, clusterEndpoints: [], internalEndpoints: [], externalEndpoints: [] });
  const remote = [ep('10.244.2.2')];
  const local = servicePort({ service: 'default/local', clusterIPs: [parseIp('10.96.0.12')], nodePort: 30082, externalPolicyLocal: true, clusterEndpoints: remote, internalEndpoints: remote, externalEndpoints: [] });
  const rules = portalRules(inputFor(serviceMap(none, local)));
  assert.deepEqual(chain(rules[4], SERVICES_FILTER_CHAIN), [
    '-m comment --comment "default/empty:http/TCP clusterIP" -p tcp -d 10.96.0.10/32 --dport 80 -j REJECT',
    '-m comment --comment "default/empty:http/TCP nodePort" -p tcp -d 172.31.0.11/32 --dport 30081 -j REJECT',
    '-m comment --comment "default/local:http/TCP nodePort" -p tcp -d 172.31.0.11/32 --dport 30082 -j DROP',
  ]);
  // default/local: ClusterIP is forwarded, and pods and the host still reach its NodePort.
  assert.equal(chain(rules[4], PORTALS_CONTAINER_CHAIN).length, 1);
  assert.equal(chain(rules[4], NODEPORT_CONTAINER_CHAIN).length, 1);
  assert.match(chain(rules[4], NODEPORT_CONTAINER_CHAIN)[0] ?? '', /^-s 10\.244\.0\.0\/16 .*--dport 30082 -j REDIRECT/);
  assert.equal(chain(rules[4], NODEPORT_HOST_CHAIN).length, 1);
  assert.deepEqual(chain(rules[4], NODEPORT_ACCEPT_CHAIN), []);
});

test('load-balancer source ranges: only those sources are redirected from outside, the rest dropped', () => {
  const map = serviceMap(servicePort({ service: 'default/lb', loadBalancerIPs: [parseIp('192.0.2.20')], loadBalancerSourceRanges: [parseCidr('198.51.100.0/24')] }));
  const rules = portalRules(inputFor(map));
  const match = '-m comment --comment "default/lb:http/TCP loadBalancerIP" -p tcp -d 192.0.2.20/32 --dport 80';
  assert.deepEqual(chain(rules[4], PORTALS_CONTAINER_CHAIN).slice(1), [`-s 198.51.100.0/24 ${match} -j REDIRECT --to-ports 40001`]);
  assert.deepEqual(chain(rules[4], SERVICES_FILTER_CHAIN), [`${match} -j DROP`]);
});

test('dual-stack: each family its own proxies, endpoints and rules; IPv6 DNAT uses [address]:port', () => {
  const v4 = ep('10.244.1.2');
  const v6 = ep('fd44:1::2');
  const map = serviceMap(servicePort({ service: 'default/web', clusterIPs: [parseIp('10.96.0.10'), parseIp('fd96::10')], clusterEndpoints: [v4, v6], internalEndpoints: [v4, v6], externalEndpoints: [v4, v6] }));
  const input = inputFor(map);
  assert.deepEqual(input.plan.proxies.map((p) => [p.key, p.endpoints.map((e) => e.ip.family)]), [
    ['default/web:http/TCP internal IPv4', [4]],
    ['default/web:http/TCP internal IPv6', [6]],
  ]);
  const rules = portalRules(input);
  assert.deepEqual(chain(rules[6], PORTALS_HOST_CHAIN), [
    '-m comment --comment "default/web:http/TCP clusterIP" -p tcp -d fd96::10/128 --dport 80 -j DNAT --to-destination [fd31::11]:40001',
  ]);
  const noV6Host = portalRules(inputFor(map, { hostAddresses: new Map([[4, parseIp('172.31.0.11')]]) }));
  assert.deepEqual(chain(noV6Host[6], PORTALS_HOST_CHAIN), [], 'a family without a host address gets no host portals');
});

test('a proxy bound to a specific address is reached with DNAT from pods too', () => {
  const map = serviceMap(servicePort({ service: 'default/web' }));
  const rules = portalRules(inputFor(map, { listenAddresses: new Map([[4, parseIp('172.31.0.11')]]) }));
  assert.match(chain(rules[4], PORTALS_CONTAINER_CHAIN)[0] ?? '', /-j DNAT --to-destination 172\.31\.0\.11:40000$/);
});

test('a NodePort held by another service port, or a proxy that did not open, gets no rules', () => {
  const map = serviceMap(
    servicePort({ service: 'default/a', nodePort: 30080 }),
    servicePort({ service: 'default/b', clusterIPs: [parseIp('10.96.0.11')], nodePort: 30080 }),
  );
  const input = inputFor(map);
  assert.deepEqual(input.plan.nodePorts.map((w) => w.servicePort), ['default/a:http/TCP', 'default/b:http/TCP']);
  const rules = portalRules(input);
  assert.deepEqual(chain(rules[4], NODEPORT_CONTAINER_CHAIN).map((r) => /--comment "(\S+)/.exec(r)?.[1]), ['default/a:http/TCP']);
  const ports = new Map(input.ports);
  ports.delete(proxyKey('default/b:http/TCP', 'internal', 4));
  const partial = portalRules({ ...input, ports });
  assert.ok(!chain(partial[4], PORTALS_CONTAINER_CHAIN).some((r) => r.includes('10.96.0.11')));
});

test('SCTP is not proxied in this mode; cluster IPs of a family decide whether it is served', () => {
  const plan = planProxies(
    serviceMap(
      servicePort({ service: 'default/sctp', protocol: 'SCTP' }),
      servicePort({ service: 'default/v4', externalIPs: [parseIp('2001:db8::1')] }),
    ),
  );
  assert.deepEqual(plan.unsupported, ['default/sctp:http/SCTP']);
  assert.deepEqual(plan.proxies.map((p) => p.key), ['default/v4:http/TCP internal IPv4']);
  assert.deepEqual(plan.frontends.map((f) => f.kind), ['clusterIP']);
});

test('ClientIP affinity reaches the proxies in milliseconds', () => {
  const plan = planProxies(serviceMap(servicePort({ service: 'default/sticky', sessionAffinityTimeoutSeconds: 10800 })));
  assert.equal(plan.proxies[0]?.affinityTimeoutMs, 10_800_000);
});
