// Names reach iptables-restore inside quoted comments in both iptables-based modes: a name that got
// past decoding (a cluster file has no API server) must still give one comment, never a second rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ruleComment } from '../../src/dataplane/iptables/ruleset.js';
import { computeServiceRules } from '../../src/dataplane/service-iptables/rules.js';
import { nodePortClaimKey, portalRules } from '../../src/dataplane/userspace/portal-rules.js';
import { planProxies } from '../../src/dataplane/userspace/proxy-plan.js';
import { type Family, type Ip, parseIp } from '../../src/model/ip.js';
import { serviceMap, servicePort } from '../support/service-map.js';

const HOSTILE = 'x" ! -s 0.0.0.0/0 -j ACCEPT -m comment --comment "y';

test('a rule comment keeps names readable and drops what could close its quotes', () => {
  assert.equal(ruleComment('default/web:http/TCP internal IPv4'), 'default/web:http/TCP internal IPv4');
  assert.equal(ruleComment(`a"b\\c\n$(d)`), 'a_b_c___d_');
});

test('a hostile port name gives one quoted comment per rule in the iptables and userspace modes', () => {
  const map = serviceMap([servicePort({ service: 'default/we"b', portName: HOSTILE, nodePort: 30080 })]);
  const plan = planProxies(map);
  const rules = [
    computeServiceRules(map),
    portalRules({
      plan,
      ports: new Map(plan.proxies.map((p, i) => [p.key, 40000 + i] as const)),
      nodePortHolders: new Map(plan.nodePorts.map((w) => [nodePortClaimKey(w.protocol, w.family, w.port), w.servicePort])),
      clusterCIDRs: map.clusterCIDRs,
      hostAddresses: new Map<Family, Ip>([[4, parseIp('172.31.0.11')]]),
      listenAddresses: new Map(),
    }),
  ];
  let comments = 0;
  for (const desired of rules) {
    for (const family of [desired[4], desired[6]]) {
      for (const chain of family?.chains ?? []) {
        for (const rule of chain.rules) {
          const outsideComments = rule.replace(/--comment "[^"]*"/g, '--comment');
          assert.ok(!outsideComments.includes('"') && !outsideComments.includes('0.0.0.0/0'), rule);
          comments += (rule.match(/--comment "[^"]*"/g) ?? []).length;
        }
      }
    }
  }
  assert.ok(comments > 0);
});
