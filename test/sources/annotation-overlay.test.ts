import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  OverlayError,
  SHARED_ANNOTATIONS,
  formatOverlay,
  nodeOfOverlayFile,
  overlaid,
  overlayFileName,
  parseOverlay,
} from '../../src/sources/file/annotation-overlay.js';

const BROKEN = 'wirelane.io/tunnels-broken';
const DISCOVERED = 'wirelane.io/discovered-endpoints';
const WIREGUARD_IP = 'wirelane.io/wireguard-ip';

test('the directory carries exactly the run-time annotations: tunnels-broken, discovered-endpoints, wireguard-ip of both families', () => {
  assert.deepEqual([...SHARED_ANNOTATIONS].sort(), [DISCOVERED, BROKEN, WIREGUARD_IP, 'wirelane.io/other-wireguard-ip'].sort());
});

test('a file name is the node name and .json; anything else in the directory is no overlay', () => {
  assert.equal(overlayFileName('c'), 'c.json');
  assert.equal(overlayFileName('node-1.example'), 'node-1.example.json');
  assert.equal(nodeOfOverlayFile('c.json'), 'c');
  assert.equal(nodeOfOverlayFile('node-1.example.json'), 'node-1.example');
  for (const other of ['.c.json.123.tmp', 'c.json.tmp', 'c.yaml', '.json', 'C.json', 'a_b.json', '..json']) {
    assert.equal(nodeOfOverlayFile(other), undefined, other);
  }
});

test('a node name that would leave the directory has no file', () => {
  for (const name of ['../etc/passwd', 'a/b', '', '.', 'A']) assert.throws(() => overlayFileName(name), OverlayError, name);
});

test('a file with shared annotations reads back as written, in name order whatever the order given', () => {
  const annotations = { [WIREGUARD_IP]: '10.4.0.1/16', [BROKEN]: '1764700000', [DISCOVERED]: '{"k":"198.51.100.2:51820"}' };
  const text = formatOverlay(annotations);
  assert.equal(text, formatOverlay({ [DISCOVERED]: annotations[DISCOVERED], [BROKEN]: annotations[BROKEN], [WIREGUARD_IP]: annotations[WIREGUARD_IP] }));
  assert.ok(text.endsWith('\n'));
  assert.deepEqual(parseOverlay(text, 'c.json'), { annotations, refused: [] });
  assert.deepEqual(parseOverlay(formatOverlay({}), 'c.json'), { annotations: {}, refused: [] });
});

test("what the operator writes (key, addresses, location, Kilo's spelling) is refused and named; the shared ones stay", () => {
  const text = JSON.stringify({
    annotations: {
      [BROKEN]: '1',
      'wirelane.io/key': 'x',
      'wirelane.io/endpoint': '203.0.113.9:51820',
      'wirelane.io/internal-ip': '192.168.9.9/24',
      'wirelane.io/location': 'elsewhere',
      'wirelane.io/last-seen': '1',
      'kilo.squat.ai/tunnels-broken': '1',
      other: 'y',
    },
  });
  const read = parseOverlay(text, 'c.json');
  assert.deepEqual(read.annotations, { [BROKEN]: '1' });
  assert.deepEqual(read.refused, [
    'wirelane.io/key',
    'wirelane.io/endpoint',
    'wirelane.io/internal-ip',
    'wirelane.io/location',
    'wirelane.io/last-seen',
    'kilo.squat.ai/tunnels-broken',
    'other',
  ]);
});

test('a file that is no overlay is an error naming the file and what is wrong', () => {
  const cases: [string, RegExp][] = [
    ['{', /^d\/c\.json: not JSON \(/],
    ['', /^d\/c\.json: not JSON/],
    ['[]', /^d\/c\.json: want \{"annotations"/],
    ['null', /^d\/c\.json: want \{"annotations"/],
    ['{"annotations": []}', /^d\/c\.json: want \{"annotations"/],
    ['{"metadata": {}}', /^d\/c\.json: want \{"annotations"/],
    [`{"annotations": {"${BROKEN}": 1}}`, /^d\/c\.json: annotation wirelane\.io\/tunnels-broken is not a string$/],
    [`{"annotations": {"${DISCOVERED}": null}}`, /^d\/c\.json: annotation wirelane\.io\/discovered-endpoints is not a string$/],
  ];
  for (const [text, message] of cases) assert.throws(() => parseOverlay(text, 'd/c.json'), (err: unknown) => err instanceof OverlayError && message.test(err.message), text);
});

test("the overlay wins for its annotations over the file's, and leaves every other field and annotation as the file has it", () => {
  const node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'c', labels: { l: 'v' }, annotations: { 'wirelane.io/key': 'K', [BROKEN]: 'operator', [WIREGUARD_IP]: '10.4.0.9/16' } },
    spec: { podCIDR: '10.244.2.0/24' },
  };
  const frozen = structuredClone(node);
  const out = overlaid(node, { [BROKEN]: '1764700000', [DISCOVERED]: '{}' });
  assert.deepEqual(out, {
    ...node,
    metadata: { ...node.metadata, annotations: { 'wirelane.io/key': 'K', [BROKEN]: '1764700000', [WIREGUARD_IP]: '10.4.0.9/16', [DISCOVERED]: '{}' } },
  });
  assert.deepEqual(node, frozen, "the file's object is not changed");
  assert.deepEqual(overlaid({ kind: 'Node' }, { [BROKEN]: '1' }), { kind: 'Node', metadata: { annotations: { [BROKEN]: '1' } } });
});
