import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatEndpoint } from '../../src/model/endpoint.js';
import { formatCidr } from '../../src/model/ip.js';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { decodeNode } from '../../src/sources/node.js';
import type { KubeObject } from '../../src/sources/objects.js';
import { describeProblem } from '../../src/sources/problem.js';

const KEY = publicKeyOf(generatePrivateKey());
const OPTS = { topologyLabel: 'topology.kubernetes.io/region' };

function nodeObject(annotations: Record<string, string>, extra: Partial<KubeObject> = {}): KubeObject {
  return { metadata: { name: 'b', annotations, labels: { 'topology.kubernetes.io/region': 'eu' } }, spec: { podCIDR: '10.2.1.0/24' }, ...extra };
}

test('every annotation decodes from a good value', () => {
  const peerKey = publicKeyOf(generatePrivateKey());
  const { node, problems } = decodeNode(
    nodeObject({
      'wirelane.io/location': 'gcp',
      'wirelane.io/leader': '',
      'wirelane.io/endpoint': '1.2.3.4:51820',
      'wirelane.io/internal-ip': '192.168.0.1/24',
      'wirelane.io/key': KEY,
      'wirelane.io/last-seen': '1700000000',
      'wirelane.io/persistent-keepalive': '25',
      'wirelane.io/allowed-location-ips': '10.9.0.0/16, 10.10.0.0/16',
      'wirelane.io/discovered-endpoints': JSON.stringify({ [peerKey]: '5.6.7.8:1234' }),
      'wirelane.io/wireguard-ip': '10.4.0.1/16',
      'wirelane.io/granularity': 'full',
      'wirelane.io/tunnels-broken': '1700000000',
    }),
    OPTS,
  );
  assert.deepEqual(problems, []);
  assert.equal(node.tunnelsBroken, true);
  assert.equal(node.location, 'gcp');
  assert.equal(node.leader, true);
  assert.equal(node.endpoint && formatEndpoint(node.endpoint), '1.2.3.4:51820');
  assert.equal(node.internalIP && formatCidr(node.internalIP), '192.168.0.1/24');
  assert.equal(node.publicKey, KEY);
  assert.equal(node.lastSeen, 1700000000);
  assert.equal(node.persistentKeepalive, 25);
  assert.deepEqual(node.allowedLocationIPs.map(formatCidr), ['10.9.0.0/16', '10.10.0.0/16']);
  assert.equal(formatEndpoint(node.discoveredEndpoints.get(peerKey as never)!), '5.6.7.8:1234');
  assert.deepEqual(node.wireguardIPs?.map(formatCidr), ['10.4.0.1/16']);
  assert.equal(node.granularity, 'full');
  assert.deepEqual(node.podCIDRs.map(formatCidr), ['10.2.1.0/24']);
});

test('tunnels-broken is a mark by presence: any value marks, absence does not', () => {
  assert.equal(decodeNode(nodeObject({ 'kilo.squat.ai/tunnels-broken': '' }), OPTS).node.tunnelsBroken, true);
  assert.equal(decodeNode(nodeObject({}), OPTS).node.tunnelsBroken, undefined);
});

test('a malformed annotation is reported once and the rest of the node still decodes', () => {
  const cases: [string, string, RegExp][] = [
    ['internal-ip', '300.1.2.3/99', /is not a CIDR/],
    ['endpoint', '1.2.3.4:99999', /bad port/],
    ['key', 'not-a-key', /not a WireGuard key/],
    ['persistent-keepalive', '-1', /not a keepalive/],
    ['last-seen', 'yesterday', /unix seconds/],
    ['wireguard-ip', '10.4.0.1', /no prefix length/],
    ['granularity', 'galaxy', /not a granularity/],
    ['discovered-endpoints', '{not json', /not a JSON object/],
    ['allowed-location-ips', '10.9.0.0/16,bogus', /"bogus" is not a CIDR/],
    ['force-endpoint', 'nope', /want host:port/],
  ];
  for (const [suffix, value, want] of cases) {
    const { node, problems } = decodeNode(
      nodeObject({ 'wirelane.io/key': KEY, 'wirelane.io/location': 'gcp', [`wirelane.io/${suffix}`]: value }),
      OPTS,
    );
    assert.equal(problems.length, 1, suffix);
    const line = describeProblem(problems[0]!);
    assert.match(line, new RegExp(`^Node "b": annotation wirelane.io/${suffix}: `), suffix);
    assert.match(line, want, suffix);
    assert.equal(node.location, 'gcp', suffix);
    if (suffix !== 'key') assert.equal(node.publicKey, KEY, suffix);
  }
});

test('the good entries of a partly bad allowed-location-ips list are kept', () => {
  const { node } = decodeNode(nodeObject({ 'wirelane.io/allowed-location-ips': '10.9.0.0/16,bogus,10.10.0.0/16' }), OPTS);
  assert.deepEqual(node.allowedLocationIPs.map(formatCidr), ['10.9.0.0/16', '10.10.0.0/16']);
});

test('kilo.squat.ai annotations are read, and wirelane.io wins when both are set', () => {
  const { node } = decodeNode(
    nodeObject({ 'kilo.squat.ai/location': 'kilo', 'kilo.squat.ai/endpoint': '9.9.9.9:1', 'wirelane.io/endpoint': '1.1.1.1:2' }),
    OPTS,
  );
  assert.equal(node.location, 'kilo');
  assert.equal(node.endpoint && formatEndpoint(node.endpoint), '1.1.1.1:2');
});

test('location falls back to the topology label, which is configurable', () => {
  assert.equal(decodeNode(nodeObject({}), OPTS).node.location, 'eu');
  const custom = nodeObject({}, { metadata: { name: 'b', labels: { zone: 'z1' } } });
  assert.equal(decodeNode(custom, { topologyLabel: 'zone' }).node.location, 'z1');
  assert.equal(decodeNode(custom, OPTS).node.location, '');
});

test('force-endpoint and force-internal-ip override the discovered values', () => {
  const { node } = decodeNode(
    nodeObject({
      'wirelane.io/endpoint': '1.1.1.1:1',
      'wirelane.io/force-endpoint': '[fd00::9]:7',
      'wirelane.io/internal-ip': '192.168.0.1/24',
      'wirelane.io/force-internal-ip': '172.16.0.1/16',
    }),
    OPTS,
  );
  assert.equal(node.endpoint && formatEndpoint(node.endpoint), '[fd00::9]:7');
  assert.equal(node.internalIP && formatCidr(node.internalIP), '172.16.0.1/16');
});

test('force-internal-ip "" or "-" means no internal IP', () => {
  for (const none of ['', '-']) {
    const { node, problems } = decodeNode(
      nodeObject({ 'wirelane.io/internal-ip': '192.168.0.1/24', 'wirelane.io/force-internal-ip': none }),
      OPTS,
    );
    assert.equal(node.internalIP, undefined);
    assert.deepEqual(problems, []);
  }
});

test('a bad force-endpoint falls back to the endpoint annotation', () => {
  const { node, problems } = decodeNode(nodeObject({ 'wirelane.io/endpoint': '1.1.1.1:1', 'wirelane.io/force-endpoint': 'x' }), OPTS);
  assert.equal(node.endpoint && formatEndpoint(node.endpoint), '1.1.1.1:1');
  assert.equal(problems.length, 1);
});

test('pod CIDRs come from spec.podCIDRs (both families), else spec.podCIDR', () => {
  const dual = decodeNode(nodeObject({}, { spec: { podCIDR: '10.2.1.0/24', podCIDRs: ['10.2.1.0/24', 'fd10::/64'] } }), OPTS);
  assert.deepEqual(dual.node.podCIDRs.map(formatCidr), ['10.2.1.0/24', 'fd10::/64']);
  const single = decodeNode(nodeObject({}, { spec: { podCIDR: '10.2.1.0/24', podCIDRs: [] } }), OPTS);
  assert.deepEqual(single.node.podCIDRs.map(formatCidr), ['10.2.1.0/24']);
  const bad = decodeNode(nodeObject({}, { spec: { podCIDRs: ['10.2.1.0/24', 'x'] } }), OPTS);
  assert.deepEqual(bad.node.podCIDRs.map(formatCidr), ['10.2.1.0/24']);
  assert.match(describeProblem(bad.problems[0]!), /spec.podCIDRs: "x" is not a CIDR/);
  assert.deepEqual(decodeNode(nodeObject({}, { spec: {} }), OPTS).node.podCIDRs, []);
});

test('Kilo-style discovered endpoints ({IP, Port}) are accepted', () => {
  const peerKey = publicKeyOf(generatePrivateKey());
  const { node } = decodeNode(
    nodeObject({ 'wirelane.io/discovered-endpoints': JSON.stringify({ [peerKey]: { IP: 'fd00::5', Port: 9 } }) }),
    OPTS,
  );
  assert.equal(formatEndpoint(node.discoveredEndpoints.get(peerKey as never)!), '[fd00::5]:9');
});

test('a node without a name is rejected as a whole', () => {
  assert.throws(() => decodeNode({ metadata: {} }, OPTS), /Node "": metadata.name: missing/);
});

test('an annotation that is not a string is reported on its own, not crashed on', () => {
  const { node, problems } = decodeNode({ metadata: { name: 'b', annotations: { x: 1, 'wirelane.io/location': 'gcp' } as never } }, OPTS);
  assert.deepEqual(problems.map(describeProblem), ['Node "b": annotation x: 1 is not a string']);
  assert.equal(node.location, 'gcp');
  const whole = decodeNode({ metadata: { name: 'b', annotations: [] as never } }, OPTS);
  assert.deepEqual(whole.problems.map(describeProblem), ['Node "b": metadata.annotations: not a map of strings']);
});

test('dual stack: internal-ip, force-internal-ip and wireguard-ip take one CIDR per family (as the previous version wrote them), the first is the primary', () => {
  const { node, problems } = decodeNode(
    nodeObject({ 'wirelane.io/internal-ip': '192.168.0.1/24,fd31::1/64', 'wirelane.io/wireguard-ip': '10.4.0.1/16, fd00:4::1/64' }),
    OPTS,
  );
  assert.deepEqual(problems, []);
  assert.equal(node.internalIP && formatCidr(node.internalIP), '192.168.0.1/24');
  assert.equal(node.otherInternalIP && formatCidr(node.otherInternalIP), 'fd31::1/64');
  assert.deepEqual(node.wireguardIPs?.map(formatCidr), ['10.4.0.1/16', 'fd00:4::1/64']);
  const forced = decodeNode(nodeObject({ 'wirelane.io/internal-ip': '192.168.0.1/24,fd31::1/64', 'wirelane.io/force-internal-ip': 'fd31::9/64,172.16.0.1/16' }), OPTS).node;
  assert.equal(forced.internalIP && formatCidr(forced.internalIP), 'fd31::9/64');
  assert.equal(forced.otherInternalIP && formatCidr(forced.otherInternalIP), '172.16.0.1/16');
  assert.equal(decodeNode(nodeObject({ 'wirelane.io/internal-ip': '192.168.0.1/24' }), OPTS).node.otherInternalIP, undefined, "Kilo's single CIDR");
});

test('dual stack: two CIDRs of one family, three, or a bad one cost the whole internal-ip, which falls back to Kilo\'s', () => {
  for (const bad of ['192.168.0.1/24,192.168.1.1/24', 'fd31::1/64,fd32::1/64', '192.168.0.1/24,fd31::1/64,10.0.0.1/8', '192.168.0.1/24,nope']) {
    const { node, problems } = decodeNode(nodeObject({ 'wirelane.io/internal-ip': bad, 'kilo.squat.ai/internal-ip': '10.9.0.1/16' }), OPTS);
    assert.equal(node.internalIP && formatCidr(node.internalIP), '10.9.0.1/16', bad);
    assert.equal(node.otherInternalIP, undefined, bad);
    assert.deepEqual(problems.map((p) => p.field), ['annotation wirelane.io/internal-ip'], bad);
  }
});

// Mid-upgrade, agents before dual stack parse internal-ip and wireguard-ip as one CIDR each.
test('dual stack: the other family comes from other-internal-ip and other-wireguard-ip, beside one CIDR each', () => {
  const { node, problems } = decodeNode(
    nodeObject({
      'wirelane.io/internal-ip': 'fd31::1/64',
      'wirelane.io/other-internal-ip': '192.168.0.1/24',
      'wirelane.io/wireguard-ip': '10.4.0.1/16',
      'wirelane.io/other-wireguard-ip': 'fd00:4::1/64',
    }),
    OPTS,
  );
  assert.deepEqual(problems, []);
  assert.equal(node.internalIP && formatCidr(node.internalIP), 'fd31::1/64');
  assert.equal(node.otherInternalIP && formatCidr(node.otherInternalIP), '192.168.0.1/24');
  assert.deepEqual(node.wireguardIPs?.map(formatCidr), ['10.4.0.1/16', 'fd00:4::1/64']);
});

test('dual stack: an other- annotation is not added where the first already holds both families, nor where there is no first', () => {
  const cases: [string, Record<string, string>, string[], string[] | undefined][] = [
    // A node rolled back to the previous version: its comma form stands, the later version's other- is left over.
    ['the comma form stands', { 'wirelane.io/internal-ip': '192.168.0.1/24,fd31::1/64', 'wirelane.io/other-internal-ip': 'fd31::7/64' }, ['192.168.0.1/24', 'fd31::1/64'], undefined],
    ['no internal-ip: no internal IP at all', { 'wirelane.io/other-internal-ip': 'fd31::7/64' }, [], undefined],
    ['force-internal-ip stands over both', { 'wirelane.io/force-internal-ip': '172.16.0.1/16', 'wirelane.io/internal-ip': '192.168.0.1/24', 'wirelane.io/other-internal-ip': 'fd31::7/64' }, ['172.16.0.1/16'], undefined],
    ['force-internal-ip "-": none', { 'wirelane.io/force-internal-ip': '-', 'wirelane.io/internal-ip': '192.168.0.1/24', 'wirelane.io/other-internal-ip': 'fd31::7/64' }, [], undefined],
    ['wireguard-ip in the comma form', { 'wirelane.io/wireguard-ip': '10.4.0.1/16,fd00:4::1/64', 'wirelane.io/other-wireguard-ip': 'fd00:4::9/64' }, [], ['10.4.0.1/16', 'fd00:4::1/64']],
    ["Kilo's spelling is read too", { 'kilo.squat.ai/internal-ip': '192.168.0.1/24', 'kilo.squat.ai/other-internal-ip': 'fd31::7/64' }, ['192.168.0.1/24', 'fd31::7/64'], undefined],
  ];
  for (const [name, annotations, internal, wireguard] of cases) {
    const { node, problems } = decodeNode(nodeObject(annotations), OPTS);
    assert.deepEqual(problems, [], name);
    assert.deepEqual([node.internalIP, node.otherInternalIP].flatMap((c) => (c ? [formatCidr(c)] : [])), internal, name);
    assert.deepEqual(node.wireguardIPs?.map(formatCidr), wireguard, name);
  }
});

test('dual stack: an other- annotation of the first one\'s family, or not one CIDR, costs only itself', () => {
  const cases: [Record<string, string>, string, string][] = [
    [{ 'wirelane.io/internal-ip': '192.168.0.1/24', 'wirelane.io/other-internal-ip': '192.168.1.1/24' }, 'annotation wirelane.io/other-internal-ip', '192.168.1.1/24 is of the family of 192.168.0.1/24, not the other one'],
    [{ 'wirelane.io/internal-ip': '192.168.0.1/24', 'wirelane.io/other-internal-ip': '192.168.1.1/24,fd31::1/64' }, 'annotation wirelane.io/other-internal-ip', ''],
    [{ 'wirelane.io/wireguard-ip': 'fd00:4::1/64', 'wirelane.io/other-wireguard-ip': 'fd00:5::1/64' }, 'annotation wirelane.io/other-wireguard-ip', 'fd00:5::1/64 is of the family of fd00:4::1/64, not the other one'],
    [{ 'wirelane.io/wireguard-ip': '10.4.0.1/16', 'wirelane.io/other-wireguard-ip': 'nope' }, 'annotation wirelane.io/other-wireguard-ip', ''],
  ];
  for (const [annotations, field, message] of cases) {
    const { node, problems } = decodeNode(nodeObject(annotations), OPTS);
    assert.deepEqual(problems.map((p) => p.field), [field], field);
    if (message !== '') assert.equal(problems[0]?.message, message);
    const first = annotations['wirelane.io/internal-ip'] ?? annotations['wirelane.io/wireguard-ip'];
    const kept = 'wirelane.io/internal-ip' in annotations ? [node.internalIP, node.otherInternalIP].flatMap((c) => (c ? [formatCidr(c)] : [])) : node.wireguardIPs?.map(formatCidr);
    assert.deepEqual(kept, [first], 'the first stands alone');
  }
});
