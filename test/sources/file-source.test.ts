import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { createLogger } from '../../src/observability/logger.js';
import { FileSource } from '../../src/sources/file/file-source.js';
import { until } from '../support/wait.js';

const KEY = publicKeyOf(generatePrivateKey());
const OTHER_KEY = publicKeyOf(generatePrivateKey());

/** A started FileSource over a cluster file holding Node "a" with `key` (none when undefined). */
async function startFileSource(t: TestContext, key: string | undefined): Promise<FileSource> {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-file-source-'));
  const path = join(dir, 'cluster.yaml');
  const annotations = key === undefined ? '{}' : `{wirelane.io/key: "${key}"}`;
  await writeFile(path, `apiVersion: v1\nkind: Node\nmetadata: {name: a, annotations: ${annotations}}\n`);
  const source = new FileSource(path, createLogger('silent'));
  t.after(async () => {
    await source.stop();
    await rm(dir, { recursive: true, force: true });
  });
  await source.start(() => {});
  return source;
}

test("the agent never writes to the operator's cluster file", async (t) => {
  const source = await startFileSource(t, KEY);
  assert.equal(source.publisher, undefined);
});

test("the node's key in the cluster file must be the agent's", async (t) => {
  const source = await startFileSource(t, KEY);
  source.checkOwnKey('a', KEY, '/var/lib/wirelane/key');
  assert.throws(() => source.checkOwnKey('a', OTHER_KEY, '/var/lib/wirelane/key'), {
    message: `cluster file: Node "a" has key ${KEY} but /var/lib/wirelane/key belongs to ${OTHER_KEY}; put the public key printed by 'wirelane keygen' into the file`,
  });
  assert.throws(() => source.checkOwnKey('b', KEY, '/var/lib/wirelane/key'), { message: 'cluster file: no Node "b" (set --hostname)' });
});

test('a node without a key in the cluster file is a start-up error', async (t) => {
  const source = await startFileSource(t, undefined);
  assert.throws(() => source.checkOwnKey('a', KEY, '/var/lib/wirelane/key'), { message: /^cluster file: Node "a" has key \(none\) but / });
});

test("a ConfigMap's update (the kubelet swaps the ..data symlink, no event names the file) is picked up", async (t) => {
  // The kubelet's layout: cluster.yaml -> ..data/cluster.yaml, ..data -> ..<timestamp>/.
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-configmap-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const nodeFile = (node: string) => `apiVersion: v1\nkind: Node\nmetadata: {name: ${node}}\n`;
  const version = async (name: string, node: string) => {
    await mkdir(join(dir, name));
    await writeFile(join(dir, name, 'cluster.yaml'), nodeFile(node));
  };
  await version('..2026_12_02_10_00_00.1', 'a');
  await symlink('..2026_12_02_10_00_00.1', join(dir, '..data'));
  await symlink('..data/cluster.yaml', join(dir, 'cluster.yaml'));
  const started = async (pollMs: number) => {
    const source = new FileSource(join(dir, 'cluster.yaml'), createLogger('silent'), () => {}, pollMs);
    const seen = { changes: 0 };
    await source.start(() => seen.changes++);
    t.after(() => source.stop());
    return { source, seen };
  };
  const names = (source: FileSource) => source.snapshot().map((o) => o.object.metadata?.name);

  // The kubelet's swap: a new symlink renamed over ..data; the watcher hears of `..data`.
  const watched = await started(3_600_000);
  await version('..2026_12_02_10_05_00.2', 'b');
  await symlink('..2026_12_02_10_05_00.2', join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  await until('the swap to be seen', async () => watched.seen.changes === 1, 10_000, 50);
  assert.deepEqual(names(watched.source), ['b']);

  // A change no event reports (written inside the version directory, which is not watched): the poll.
  const polled = await started(200);
  await writeFile(join(dir, '..2026_12_02_10_05_00.2', 'cluster.yaml'), nodeFile('c'));
  await until('the poll to see the change', async () => polled.seen.changes === 1, 10_000, 50);
  assert.deepEqual(names(polled.source), ['c']);
});

test('a file larger than a read reads whole; a rewrite keeps the objects of the documents it left alone', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-file-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'cluster.json');
  // ~1.5 MiB of JSON documents, several times the source's read chunk, with CRLF line ends.
  const node = (i: number, location: string) => JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: `n-${i}`, annotations: { 'wirelane.io/location': location, note: 'x'.repeat(1000) } } });
  const file = (changed: number) => Array.from({ length: 1500 }, (_, i) => node(i, i === changed ? 'moved' : 'here')).join('\r\n---\r\n');
  await writeFile(path, file(-1));
  // Read by hand: no watcher reads it meanwhile.
  const source = new FileSource(path, createLogger('silent'));
  await source.reload(true);
  const before = source.snapshot();
  assert.deepEqual(before.map((o) => o.object.metadata?.name), Array.from({ length: 1500 }, (_, i) => `n-${i}`));
  await writeFile(path, file(700));
  assert.equal(await source.reload(false), true);
  const after = source.snapshot();
  assert.equal(after.length, 1500);
  for (let i = 0; i < 1500; i++) {
    assert.equal(after[i]!.object.metadata?.annotations?.['wirelane.io/location'], i === 700 ? 'moved' : 'here');
    if (i !== 700) assert.equal(after[i]!.object, before[i]!.object, `n-${i} kept its object`);
  }
});
