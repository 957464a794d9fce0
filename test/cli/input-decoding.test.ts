// The CLI's lenient decoding, in-process: the same decoders as the agent, each bad value one problem
// located where it stands, and --strict turning any of them into a failure.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clusterOriginOf } from '../../src/cli/cluster-objects.js';
import { UsageError } from '../../src/cli/command.js';
import { InputWarnings, warningText } from '../../src/cli/input-warnings.js';
import { serviceMapInputOf, serviceNodeOf } from '../../src/cli/services.js';
import { formatIp } from '../../src/model/ip.js';
import { parseClusterFile } from '../../src/sources/file/cluster-file.js';
import type { KubeObject } from '../../src/sources/objects.js';
import type { LocatedProblem } from '../../src/sources/problem.js';
import type { SourceObject } from '../../src/sources/source.js';

const service = (name: string, clusterIP: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { clusterIP, ports: [{ port: 80 }] },
});

const n1: KubeObject = {
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'n1', labels: { 'topology.kubernetes.io/zone': 'z1' } },
  spec: { podCIDR: '10.244.1.0/24' },
  status: { addresses: [{ type: 'InternalIP', address: '192.168.0.1' }, { type: 'Hostname', address: 'n1' }] },
};

test('a bad Service is left out with one problem; the good ones are decoded', () => {
  const objects: SourceObject[] = [
    { kind: 'Node', object: n1 },
    { kind: 'Service', object: service('a', '10.96.0.1') },
    { kind: 'Service', object: service('bad', '10.96.0.300') },
    { kind: 'Service', object: service('c', '10.96.0.3') },
  ];
  const { input, problems } = serviceMapInputOf(objects, 'n1');
  assert.deepEqual(input.services.map((s) => s.name), ['a', 'c']);
  assert.deepEqual(problems, [{ kind: 'Service', object: 'shop/bad', field: 'spec.clusterIP', message: '"10.96.0.300" is not an IP address' }]);
  assert.deepEqual(input.node.addresses.map(formatIp), ['192.168.0.1']);
  assert.equal(input.node.zone, 'z1');
});

test("a cluster file's problems carry their document", () => {
  const objects = parseClusterFile(
    'apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {clusterIP: nope}\n',
    'c.yaml',
  );
  const { problems } = serviceMapInputOf(objects, 'n1');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.where, 'document 2 (Service "bad")');
});

test('the node: a bad address or address list is skipped with a problem, the rest kept', () => {
  const cases: [string, unknown, string[], string[]][] = [
    ['a bad address', [{ type: 'InternalIP', address: '192.168.0.300' }, { type: 'ExternalIP', address: '203.0.113.1' }], ['203.0.113.1'], ['status.addresses[0].address']],
    ['an entry without a type', [{ address: '192.168.0.1' }, { type: 'InternalIP', address: '192.168.0.2' }], ['192.168.0.2'], []],
    ['an entry that is not an object', ['192.168.0.1', { type: 'InternalIP', address: '192.168.0.2' }], ['192.168.0.2'], ['status.addresses[0]']],
    ['a list that is not one', 'nope', [], ['status.addresses']],
    ['no status', undefined, [], []],
  ];
  for (const [name, addresses, kept, fields] of cases) {
    const object: KubeObject = { metadata: { name: 'n1' }, ...(addresses !== undefined && { status: { addresses } }) };
    const { node, problems } = serviceNodeOf(object);
    assert.deepEqual(node.addresses.map(formatIp), kept, name);
    assert.deepEqual(problems.map((p) => p.field), fields, name);
  }
});

test('a Node whose pod CIDR is bad: that CIDR is skipped with a problem, the others count', () => {
  const bad: KubeObject = { metadata: { name: 'n2' }, spec: { podCIDRs: ['10.244.2.0/99', '10.244.3.0/24'] } };
  const { input, problems } = serviceMapInputOf([{ kind: 'Node', object: n1 }, { kind: 'Node', object: bad }], 'n1');
  assert.deepEqual(problems.map((p) => `${p.object} ${p.field}`), ['n2 spec.podCIDRs']);
  assert.equal(input.clusterCIDRs.length, 2);
});

test('a missing node is the one error', () => {
  assert.throws(() => serviceMapInputOf([{ kind: 'Node', object: n1 }], 'zz'), /^Error: Node "zz": not in the cluster$/);
});

test('a warning names the file and document, or the object alone from the API', () => {
  const p: LocatedProblem = { kind: 'Service', object: 'shop/bad', field: 'spec.clusterIP', message: '"x" is not an IP address', where: 'document 3 (Service "bad")' };
  assert.equal(warningText(p, { kind: 'file', path: 'c.yaml' }), 'c.yaml: document 3 (Service "bad"): Service "shop/bad": spec.clusterIP: "x" is not an IP address');
  const { where: _, ...fromApi } = p;
  assert.equal(warningText(fromApi, { kind: 'kubernetes', kubeconfig: undefined }), 'Service "shop/bad": spec.clusterIP: "x" is not an IP address');
});

test('--strict: any warning fails, after every warning was written; none passes', () => {
  const lines: string[] = [];
  const warnings = new InputWarnings({ kind: 'kubernetes', kubeconfig: 'k' }, (line) => lines.push(line));
  warnings.failIfStrict(true);
  const p = { kind: 'Node', object: 'b', field: 'annotation wirelane.io/key', message: 'not a WireGuard key' } as const;
  warnings.report([p, { ...p, object: 'c' }]);
  warnings.failIfStrict(false);
  assert.throws(() => warnings.failIfStrict(true), /^Error: --strict: 2 problems in the input \(above\)$/);
  assert.deepEqual(lines, ['wirelane: warning: Node "b": annotation wirelane.io/key: not a WireGuard key\n', 'wirelane: warning: Node "c": annotation wirelane.io/key: not a WireGuard key\n']);
});

test('exactly one source: --from, or --kubeconfig (else $KUBECONFIG)', (t) => {
  const saved = process.env['KUBECONFIG'];
  t.after(() => {
    if (saved === undefined) delete process.env['KUBECONFIG'];
    else process.env['KUBECONFIG'] = saved;
  });
  process.env['KUBECONFIG'] = '/env/kubeconfig';
  assert.deepEqual(clusterOriginOf({ from: 'c.yaml' }), { kind: 'file', path: 'c.yaml' }, '--from wins over $KUBECONFIG');
  assert.deepEqual(clusterOriginOf({}), { kind: 'kubernetes', kubeconfig: '/env/kubeconfig' });
  assert.deepEqual(clusterOriginOf({ kubeconfig: '/k' }), { kind: 'kubernetes', kubeconfig: '/k' });
  assert.throws(() => clusterOriginOf({ from: 'c.yaml', kubeconfig: '/k' }), (err: unknown) => err instanceof UsageError && /not both/.test(err.message));
  assert.throws(() => clusterOriginOf({ from: '' }), UsageError);
});
