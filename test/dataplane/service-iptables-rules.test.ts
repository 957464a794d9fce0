// Pure parts of the iptables service proxy: the service map as rules and the conntrack command line
// (the UDP conntrack entries a change leaves stale: test/services/changes.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { validateFamilyRules, type DesiredRules, type FamilyRules, type OwnedChain } from '../../src/dataplane/iptables/ruleset.js';
import { SERVICE_OWNER, serviceChainName } from '../../src/dataplane/service-iptables/chain-names.js';
import { ServiceRuleCache } from '../../src/dataplane/service-iptables/rule-cache.js';
import { computeServiceRules } from '../../src/dataplane/service-iptables/rules.js';
import { type ServiceChanges, ServiceChangeTracker } from '../../src/services/changes.js';
import { conntrackDeleteArgs } from '../../src/host/conntrack.js';
import { parseCidr, parseIp } from '../../src/model/ip.js';
import { servicePortKey, type ServiceMap } from '../../src/model/service.js';
import { backend, serviceMap, servicePort } from '../support/service-map.js';

function family(rules: DesiredRules, f: 4 | 6): FamilyRules {
  const r = rules[f];
  assert.ok(r !== undefined, `IPv${f} rules expected`);
  return r;
}

function chain(rules: FamilyRules, table: string, name: string): readonly string[] {
  const found = rules.chains.find((c) => c.table === table && c.name === name);
  assert.ok(found !== undefined, `chain ${table}/${name} expected among ${rules.chains.map((c) => c.name).join(', ')}`);
  return found.rules;
}

const KEY = servicePortKey(servicePort());
const SVC = serviceChainName('SVC', KEY);
const SVL = serviceChainName('SVL', KEY);
const EXT = serviceChainName('EXT', KEY);
const FW = serviceChainName('FW', KEY);
const sep = (endpoint: string, key = KEY) => serviceChainName('SEP', `${key}|${endpoint}`);

describe('service rules', () => {
  test('a cluster IP dispatches to the service chain, which picks each endpoint with 1/(n-i)', () => {
    const eps = [backend('10.244.1.2:8080'), backend('10.244.1.3:8080', true), backend('10.244.2.2:8080'), backend('10.244.2.3:8080')];
    const v4 = family(computeServiceRules(serviceMap([servicePort({ clusterEndpoints: eps, internalEndpoints: eps, externalEndpoints: eps })])), 4);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-SERVICES'), [
      `-d 10.96.0.10 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http cluster IP" -j ${SVC}`,
      '-d 172.31.0.11 -j WLSVC-NODEPORTS',
    ]);
    assert.deepEqual(chain(v4, 'nat', SVC), [
      `-d 10.96.0.10 -p tcp -m tcp --dport 80 -j WLSVC-OFF-CLUSTER`,
      '-p tcp -m statistic --mode random --probability 0.2500000000 -j DNAT --to-destination 10.244.1.2:8080',
      `-m statistic --mode random --probability 0.3333333333 -j ${sep('10.244.1.3:8080')}`,
      '-p tcp -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 10.244.2.2:8080',
      '-p tcp -j DNAT --to-destination 10.244.2.3:8080',
    ]);
    // Only the endpoint on this node has a chain: the hairpin mark must come before its DNAT.
    assert.deepEqual(chain(v4, 'nat', sep('10.244.1.3:8080')), [
      '-s 10.244.1.3 -j WLSVC-MARK-MASQ',
      '-p tcp -j DNAT --to-destination 10.244.1.3:8080',
    ]);
    assert.deepEqual(v4.chains.filter((c) => c.name.startsWith('WLSVC-SEP-')).map((c) => c.name), [sep('10.244.1.3:8080')]);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-OFF-CLUSTER'), ['-s 10.244.0.0/16 -j RETURN', '-j WLSVC-MARK-MASQ']);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-MARK-MASQ'), ['-j MARK --or-mark 0x4000']);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-POSTROUTING'), ['-m mark ! --mark 0x4000/0x4000 -j RETURN', '-j MARK --xor-mark 0x4000', '-j MASQUERADE --random-fully']);
  });

  test('jumps come first in the built-in chains, filter ones only for new connections', () => {
    const v4 = family(computeServiceRules(serviceMap([servicePort()])), 4);
    assert.deepEqual(
      v4.jumps.map((j) => `${j.table} ${j.from} -> ${j.to} ${j.position} ${j.match ?? ''}`),
      [
        'nat PREROUTING -> WLSVC-SERVICES insert ',
        'nat OUTPUT -> WLSVC-SERVICES insert ',
        'nat POSTROUTING -> WLSVC-POSTROUTING insert ',
        'filter INPUT -> WLSVC-FILTER insert -m conntrack --ctstate NEW',
        'filter FORWARD -> WLSVC-FILTER insert -m conntrack --ctstate NEW',
        'filter OUTPUT -> WLSVC-FILTER insert -m conntrack --ctstate NEW',
      ],
    );
    assert.ok(v4.jumps.every((j) => j.comment.startsWith('wirelane-svc:')));
  });

  test('ClientIP affinity checks every endpoint`s recent list first and records the client where it is DNATed', () => {
    const v4 = family(computeServiceRules(serviceMap([servicePort({ sessionAffinityTimeoutSeconds: 2 })])), 4);
    const [a, b] = [sep('10.244.1.2:8080'), sep('10.244.2.2:8080')];
    assert.deepEqual(chain(v4, 'nat', SVC).slice(1), [
      `-m recent --name ${a} --rcheck --seconds 2 --reap -j ${a}`,
      `-p tcp -m recent --name ${b} --update --seconds 2 --reap -j DNAT --to-destination 10.244.2.2:8080`,
      `-m statistic --mode random --probability 0.5000000000 -j ${a}`,
      `-p tcp -m recent --name ${b} --set -j DNAT --to-destination 10.244.2.2:8080`,
    ]);
    assert.deepEqual(chain(v4, 'nat', a)[1], `-p tcp -m recent --name ${a} --set -j DNAT --to-destination 10.244.1.2:8080`);
  });

  test('no endpoints: no nat dispatch, and new connections are rejected at once (TCP reset, ICMP otherwise)', () => {
    const none = { clusterEndpoints: [], internalEndpoints: [], externalEndpoints: [] };
    const rules = computeServiceRules(
      serviceMap(
        [
          servicePort({ ...none, clusterIPs: [parseIp('10.96.0.10'), parseIp('fd96::10')], nodePort: 30080, externalIPs: [parseIp('192.0.2.10')] }),
          servicePort({ ...none, portName: 'dns', protocol: 'UDP', port: 53, clusterIPs: [parseIp('10.96.0.10'), parseIp('fd96::10')] }),
        ],
        { nodePortAddresses: [parseIp('172.31.0.11'), parseIp('fd31::11')] },
      ),
    );
    const v4 = family(rules, 4);
    const v6 = family(rules, 6);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-SERVICES'), ['-d 172.31.0.11 -j WLSVC-NODEPORTS']);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-NODEPORTS'), []);
    assert.deepEqual(chain(v4, 'filter', 'WLSVC-FILTER'), [
      '-d 10.96.0.10 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http has no endpoints" -j REJECT --reject-with tcp-reset',
      '-d 192.0.2.10 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http has no external endpoints" -j REJECT --reject-with tcp-reset',
      '-d 10.96.0.10 -p udp -m udp --dport 53 -m comment --comment "default/web:dns has no endpoints" -j REJECT --reject-with icmp-port-unreachable',
      '-d 172.31.0.11 -j WLSVC-FILTER-NODEPORTS',
    ]);
    assert.deepEqual(chain(v4, 'filter', 'WLSVC-FILTER-NODEPORTS'), [
      '-p tcp -m tcp --dport 30080 -m comment --comment "default/web:http has no external endpoints" -j REJECT --reject-with tcp-reset',
    ]);
    assert.deepEqual(chain(v6, 'filter', 'WLSVC-FILTER').slice(1, 2), [
      '-d fd96::10 -p udp -m udp --dport 53 -m comment --comment "default/web:dns has no endpoints" -j REJECT --reject-with icmp6-port-unreachable',
    ]);
    assert.ok(!v4.chains.some((c) => /^WLSVC-(SVC|EXT|SEP)-/.test(c.name)));
  });

  test('one family without endpoints rejects there and forwards in the other', () => {
    const rules = computeServiceRules(serviceMap([servicePort({ clusterIPs: [parseIp('10.96.0.10'), parseIp('fd96::10')] })]));
    assert.match(chain(family(rules, 4), 'nat', 'WLSVC-SERVICES')[0]!, /-j WLSVC-SVC-/);
    assert.match(chain(family(rules, 6), 'filter', 'WLSVC-FILTER')[0]!, /-d fd96::10 .* -j REJECT --reject-with tcp-reset$/);
  });

  test('IPv6 endpoints are DNATed as [address]:port, in IPv6 chains only', () => {
    const eps = [backend('[fd44:1::2]:8080', true), backend('[fd44:2::2]:8080'), backend('10.244.1.2:8080')];
    const rules = computeServiceRules(
      serviceMap([servicePort({ clusterIPs: [parseIp('fd96::10'), parseIp('10.96.0.10')], clusterEndpoints: eps, internalEndpoints: eps, externalEndpoints: eps })]),
    );
    const v6 = family(rules, 6);
    assert.deepEqual(chain(v6, 'nat', SVC), [
      '-d fd96::10 -p tcp -m tcp --dport 80 -j WLSVC-OFF-CLUSTER',
      `-m statistic --mode random --probability 0.5000000000 -j ${sep('[fd44:1::2]:8080')}`,
      '-p tcp -j DNAT --to-destination [fd44:2::2]:8080',
    ]);
    assert.deepEqual(chain(v6, 'nat', sep('[fd44:1::2]:8080')), ['-s fd44:1::2 -j WLSVC-MARK-MASQ', '-p tcp -j DNAT --to-destination [fd44:1::2]:8080']);
    assert.deepEqual(chain(v6, 'nat', 'WLSVC-OFF-CLUSTER'), ['-s fd44::/48 -j RETURN', '-j WLSVC-MARK-MASQ']);
    assert.deepEqual(chain(family(rules, 4), 'nat', SVC).slice(1), ['-p tcp -j DNAT --to-destination 10.244.1.2:8080']);
  });

  test('node ports: one jump per node-port address, never loopback, never --dst-type LOCAL; Cluster policy masquerades', () => {
    const map = serviceMap([servicePort({ nodePort: 30080 })], {
      nodePortAddresses: [parseIp('172.31.0.11'), parseIp('127.0.0.1'), parseIp('10.0.0.5'), parseIp('::1')],
    });
    const rules = computeServiceRules(map);
    const v4 = family(rules, 4);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-SERVICES').slice(1), ['-d 172.31.0.11 -j WLSVC-NODEPORTS', '-d 10.0.0.5 -j WLSVC-NODEPORTS']);
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-NODEPORTS'), [`-p tcp -m tcp --dport 30080 -m comment --comment "default/web:http node port" -j ${EXT}`]);
    assert.deepEqual(chain(v4, 'nat', EXT), ['-j WLSVC-MARK-MASQ', `-j ${SVC}`]);
    const text = JSON.stringify(rules);
    assert.ok(!text.includes('dst-type') && !text.includes('127.0.0.1'));
    assert.ok(!JSON.stringify(rules[6]?.chains ?? []).includes('::1'));
  });

  test('Local external policy: pods and the host short-circuit to every endpoint, others reach local ones unmasqueraded', () => {
    const all = [backend('10.244.1.2:8080', true), backend('10.244.2.2:8080')];
    const local = all.filter((b) => b.local);
    const v4 = family(
      computeServiceRules(serviceMap([servicePort({ nodePort: 30080, externalIPs: [parseIp('192.0.2.10')], externalPolicyLocal: true, clusterEndpoints: all, internalEndpoints: all, externalEndpoints: local })])),
      4,
    );
    assert.deepEqual(chain(v4, 'nat', EXT), [
      `-s 10.244.0.0/16 -j ${SVC}`,
      '-m addrtype --src-type LOCAL -j WLSVC-MARK-MASQ',
      `-m addrtype --src-type LOCAL -j ${SVC}`,
      `-j ${SVL}`,
    ]);
    // SVL serves external destinations only: no off-cluster marking there.
    assert.deepEqual(chain(v4, 'nat', SVL), [`-j ${sep('10.244.1.2:8080')}`]);
    assert.equal(chain(v4, 'filter', 'WLSVC-FILTER').length, 1);
  });

  test('Local external policy without a local endpoint: the short-circuit stays, the rest is dropped', () => {
    const all = [backend('10.244.2.2:8080')];
    const v4 = family(
      computeServiceRules(serviceMap([servicePort({ nodePort: 30080, externalIPs: [parseIp('192.0.2.10')], externalPolicyLocal: true, clusterEndpoints: all, internalEndpoints: all, externalEndpoints: [] })])),
      4,
    );
    assert.deepEqual(chain(v4, 'nat', EXT), [`-s 10.244.0.0/16 -j ${SVC}`, '-m addrtype --src-type LOCAL -j WLSVC-MARK-MASQ', `-m addrtype --src-type LOCAL -j ${SVC}`]);
    assert.deepEqual(chain(v4, 'filter', 'WLSVC-FILTER')[0], '-d 192.0.2.10 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http has no external endpoints" -j DROP');
    assert.deepEqual(chain(v4, 'filter', 'WLSVC-FILTER-NODEPORTS'), ['-p tcp -m tcp --dport 30080 -m comment --comment "default/web:http has no external endpoints" -j DROP']);
  });

  test('Local internal policy: the cluster IP goes to the local list, and drops without one', () => {
    const all = [backend('10.244.1.2:8080', true), backend('10.244.2.2:8080')];
    const withLocal = family(computeServiceRules(serviceMap([servicePort({ internalPolicyLocal: true, internalEndpoints: [all[0]!], clusterEndpoints: all, externalEndpoints: all })])), 4);
    assert.match(chain(withLocal, 'nat', 'WLSVC-SERVICES')[0]!, new RegExp(`-j ${SVL}$`));
    assert.deepEqual(chain(withLocal, 'nat', SVL), ['-d 10.96.0.10 -p tcp -m tcp --dport 80 -j WLSVC-OFF-CLUSTER', `-j ${sep('10.244.1.2:8080')}`]);
    const without = family(computeServiceRules(serviceMap([servicePort({ internalPolicyLocal: true, internalEndpoints: [], clusterEndpoints: all, externalEndpoints: all })])), 4);
    assert.match(chain(without, 'filter', 'WLSVC-FILTER')[0]!, /-d 10\.96\.0\.10 .* -j DROP$/);
  });

  test('load-balancer source ranges: only listed sources reach EXT, the filter drops the rest', () => {
    const v4 = family(
      computeServiceRules(serviceMap([servicePort({ loadBalancerIPs: [parseIp('192.0.2.20')], loadBalancerSourceRanges: [parseCidr('198.51.100.0/24'), parseCidr('2001:db8::/32')] })])),
      4,
    );
    assert.deepEqual(chain(v4, 'nat', 'WLSVC-SERVICES')[1], `-d 192.0.2.20 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http load balancer IP" -j ${FW}`);
    assert.deepEqual(chain(v4, 'nat', FW), [`-s 198.51.100.0/24 -j ${EXT}`]);
    assert.deepEqual(chain(v4, 'filter', 'WLSVC-FILTER')[0], '-d 192.0.2.20 -p tcp -m tcp --dport 80 -m comment --comment "default/web:http load balancer IP blocked" -j DROP');
    const open = family(computeServiceRules(serviceMap([servicePort({ loadBalancerIPs: [parseIp('192.0.2.20')] })])), 4);
    assert.match(chain(open, 'nat', 'WLSVC-SERVICES')[1]!, new RegExp(`-j ${EXT}$`));
    assert.deepEqual(chain(open, 'filter', 'WLSVC-FILTER'), ['-d 172.31.0.11 -j WLSVC-FILTER-NODEPORTS']);
  });

  test('deterministic: the same map, endpoints in any order, gives identical rules', () => {
    const eps = ['10.244.2.9:80', '10.244.1.2:80', '10.244.1.2:81', '10.244.1.10:80'].map((e) => backend(e));
    const one = computeServiceRules(serviceMap([servicePort({ clusterEndpoints: eps, internalEndpoints: eps, externalEndpoints: eps })]));
    const rev = [...eps].reverse();
    const two = computeServiceRules(serviceMap([servicePort({ clusterEndpoints: rev, internalEndpoints: rev, externalEndpoints: rev })]));
    assert.deepEqual(one, two);
  });

  test('an endpoint change touches only that service port`s chains', () => {
    const other = servicePort({ service: 'default/api', clusterIPs: [parseIp('10.96.0.11')] });
    const before = computeServiceRules(serviceMap([other, servicePort()]));
    const eps = [backend('10.244.1.2:8080', true), backend('10.244.2.3:8080')];
    const after = computeServiceRules(serviceMap([other, servicePort({ clusterEndpoints: eps, internalEndpoints: eps, externalEndpoints: eps })]));
    const text = (rules: DesiredRules) => new Map(family(rules, 4).chains.map((c: OwnedChain) => [c.name, c.rules.join('\n')]));
    const [b, a] = [text(before), text(after)];
    const changed = [...new Set([...b.keys(), ...a.keys()])].filter((name) => b.get(name) !== a.get(name)).sort();
    assert.deepEqual(changed, [SVC]);
    // A local endpoint has a chain of its own, which goes with it.
    const local = [backend('10.244.1.2:8080', true), backend('10.244.1.3:8080', true)];
    const moved = computeServiceRules(serviceMap([other, servicePort({ clusterEndpoints: local, internalEndpoints: local, externalEndpoints: local })]));
    const m = text(moved);
    const changedLocal = [...new Set([...b.keys(), ...m.keys()])].filter((name) => b.get(name) !== m.get(name)).sort();
    assert.deepEqual(changedLocal, [SVC, sep('10.244.1.3:8080')].sort());
  });

  test('every chain is acceptable to the iptables dataplane (owner prefix, <= 28 characters, declared targets)', () => {
    const all = [backend('10.244.1.2:8080', true), backend('[fd44:1::2]:8080', true), backend('10.244.2.2:8080')];
    const rules = computeServiceRules(
      serviceMap(
        [
          servicePort({ nodePort: 30080, clusterIPs: [parseIp('10.96.0.10'), parseIp('fd96::10')], externalIPs: [parseIp('192.0.2.10')], loadBalancerIPs: [parseIp('192.0.2.20')], loadBalancerSourceRanges: [parseCidr('1.2.3.0/24')], sessionAffinityTimeoutSeconds: 10800, externalPolicyLocal: true, internalPolicyLocal: true, clusterEndpoints: all, internalEndpoints: all.filter((x) => x.local), externalEndpoints: all.filter((x) => x.local) }),
          servicePort({ service: 'kube-system/dns', portName: 'dns', protocol: 'UDP', port: 53 }),
          servicePort({ service: 'default/sctp', protocol: 'SCTP', clusterEndpoints: [], internalEndpoints: [], externalEndpoints: [] }),
        ],
        { nodePortAddresses: [parseIp('172.31.0.11'), parseIp('fd31::11')] },
      ),
    );
    for (const f of [4, 6] as const) {
      const r = family(rules, f);
      validateFamilyRules(f, r, SERVICE_OWNER);
      for (const c of r.chains) assert.ok(c.name.length <= 28, c.name);
    }
  });

  test('a family without any service destination gets no chains at all (a host may lack IPv6)', () => {
    const rules = computeServiceRules(serviceMap([servicePort()], { nodePortAddresses: [parseIp('172.31.0.11'), parseIp('fd31::11')] }));
    assert.ok(rules[4] !== undefined);
    assert.equal(rules[6], undefined);
    assert.deepEqual(computeServiceRules(serviceMap([])), {});
  });
});

describe('service rules kept between applies', () => {
  const ports = [
    servicePort(),
    servicePort({ service: 'default/np', nodePort: 30080, clusterIPs: [parseIp('10.96.0.11'), parseIp('fd96::11')] }),
    servicePort({ service: 'default/lb', loadBalancerIPs: [parseIp('192.0.2.1')], loadBalancerSourceRanges: [parseCidr('198.51.100.0/24')], nodePort: 30081, externalPolicyLocal: true }),
    servicePort({ service: 'default/none', clusterIPs: [parseIp('10.96.0.12')], clusterEndpoints: [], internalEndpoints: [], externalEndpoints: [] }),
  ];
  const moved = [backend('10.244.1.9:8080', true), backend('10.244.2.2:8080')];
  const steps: [string, ServiceMap][] = [
    ['the first map', serviceMap(ports)],
    ['the same map again', serviceMap(ports)],
    ['one endpoint moved', serviceMap([ports[0]!, { ...ports[1]!, clusterEndpoints: moved, internalEndpoints: moved, externalEndpoints: moved }, ports[2]!, ports[3]!])],
    ['a port removed', serviceMap([ports[0]!, ports[2]!, ports[3]!])],
    ['a port added back', serviceMap(ports)],
    ['node-port addresses changed', serviceMap(ports, { nodePortAddresses: [parseIp('172.31.0.12'), parseIp('fd31::12')] })],
    ['cluster CIDRs changed', serviceMap(ports, { nodePortAddresses: [parseIp('172.31.0.12'), parseIp('fd31::12')], clusterCIDRs: [parseCidr('10.244.0.0/16')] })],
  ];

  test('after every kind of change they equal the rules generated from scratch, and unchanged ports hand over the same chain arrays', async () => {
    const cache = new ServiceRuleCache();
    const tracker = new ServiceChangeTracker();
    let previous: DesiredRules | undefined;
    for (const [what, map] of steps) {
      const rules = await tracker.track(map, async (changes: ServiceChanges) => cache.rulesFor(changes));
      assert.deepEqual(rules, computeServiceRules(map), what);
      if (what === 'one endpoint moved') {
        const svc = (r: DesiredRules, key: string) => family(r, 4).chains.find((c) => c.name === serviceChainName('SVC', key))!.rules;
        const unchanged = servicePortKey(ports[0]!);
        const changed = servicePortKey(ports[1]!);
        assert.equal(svc(rules, unchanged), svc(previous!, unchanged), 'an unchanged port`s chain is the same array');
        assert.notEqual(svc(rules, changed), svc(previous!, changed));
      }
      previous = rules;
    }
  });

  test('after a failed apply (forgotten) and a map that changed meanwhile, they still equal the rules generated from scratch', async () => {
    const cache = new ServiceRuleCache();
    const tracker = new ServiceChangeTracker();
    await tracker.track(steps[0]![1], async (changes) => cache.rulesFor(changes));
    await assert.rejects(
      tracker.track(steps[2]![1], async (changes) => {
        cache.rulesFor(changes);
        cache.forget();
        throw new Error('restore failed');
      }),
    );
    const map = steps[3]![1];
    assert.deepEqual(await tracker.track(map, async (changes) => cache.rulesFor(changes)), computeServiceRules(map));
  });
});

describe('conntrack command line', () => {
  test('names family, protocol, original destination and port, and reply source', () => {
    assert.deepEqual(conntrackDeleteArgs({ protocol: 'udp', family: 6, origDst: parseIp('fd96::10'), origDstPort: 53, replySrc: parseIp('fd44:1::2') }), [
      '-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', 'fd96::10', '--orig-port-dst', '53', '--reply-src', 'fd44:1::2',
    ]);
    assert.deepEqual(conntrackDeleteArgs({ protocol: 'udp', family: 4, origDstPort: 30053 }), ['-D', '-f', 'ipv4', '-p', 'udp', '--orig-port-dst', '30053']);
    assert.throws(() => conntrackDeleteArgs({ protocol: 'udp', family: 4, origDst: parseIp('fd96::10') }), /origDst fd96::10 is not IPv4/);
    assert.throws(() => conntrackDeleteArgs({ protocol: 'tcp', family: 4, origDstPort: 70000 }), /origDstPort 70000/);
  });
});
