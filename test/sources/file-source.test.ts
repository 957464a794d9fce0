import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { pino } from 'pino';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { createLogger } from '../../src/observability/logger.js';
import { MAX_OVERLAY_BYTES } from '../../src/sources/file/annotation-overlay.js';
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

// --annotations-dir: the agents of a file-sourced cluster share their run-time annotations.

const BROKEN = 'wirelane.io/tunnels-broken';
const DISCOVERED = 'wirelane.io/discovered-endpoints';

interface SharedDir {
  readonly dir: string;
  readonly annotationsDir: string;
  /** Error lines logged, and invalid-object counts, per source. */
  readonly errors: string[][];
  readonly invalid: number[];
  /** onChange calls per source. */
  readonly changes: number[];
  readonly sources: FileSource[];
  /** The annotations of Node `name` in source `i`'s snapshot. */
  annotationsOf(i: number, name: string): Readonly<Record<string, string>> | undefined;
}

/** Two started sources (two agents) over one cluster file with Nodes a, b (with keys) and one annotations directory. */
async function sharedDir(t: TestContext, pollMs = 60_000): Promise<SharedDir> {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-annotations-dir-'));
  const annotationsDir = join(dir, 'annotations');
  const path = join(dir, 'cluster.yaml');
  const node = (name: string, key: string) => `apiVersion: v1\nkind: Node\nmetadata: {name: ${name}, annotations: {wirelane.io/key: "${key}", ${BROKEN}: operator}}\n`;
  await writeFile(path, `${node('a', KEY)}---\n${node('b', OTHER_KEY)}`);
  const errors: string[][] = [[], []];
  const invalid = [0, 0];
  const changes = [0, 0];
  const sources = [0, 1].map((i) => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n').filter((l) => l !== '')) {
          const entry = JSON.parse(line) as { level: number; msg: string };
          if (entry.level >= 50) errors[i]!.push(entry.msg);
        }
        done();
      },
    });
    return new FileSource(path, pino({ level: 'info' }, sink), () => invalid[i]!++, pollMs, annotationsDir);
  });
  t.after(async () => {
    for (const s of sources) await s.stop();
    await rm(dir, { recursive: true, force: true });
  });
  for (const [i, s] of sources.entries()) await s.start(() => changes[i]!++);
  return {
    dir,
    annotationsDir,
    errors,
    invalid,
    changes,
    sources,
    annotationsOf: (i, name) => sources[i]!.snapshot().find((o) => o.kind === 'Node' && o.object.metadata?.name === name)?.object.metadata?.annotations,
  };
}

test("without --annotations-dir nothing is shared; with it the source takes only the shared annotations, never the publisher's role", async (t) => {
  const plain = await startFileSource(t, KEY);
  assert.equal(plain.sharedAnnotations, undefined);
  const { sources } = await sharedDir(t);
  assert.equal(sources[0]!.publisher, undefined, 'the cluster file stays the operator\'s: its addresses stand');
  assert.notEqual(sources[0]!.sharedAnnotations, undefined);
  await assert.rejects(sources[0]!.sharedAnnotations!.publishNode('a', { 'wirelane.io/key': 'x' }), /wirelane\.io\/key is not shared through the annotations directory/);
  await assert.rejects(sources[0]!.sharedAnnotations!.publishNode('a', { [BROKEN]: '1' }, { 'wirelane.io/last-seen': '1' }), /last-seen is not shared/);
});

test("one agent's mark reaches the other's Node a (watched, written atomically 0644, only when changed), and goes with the file on a clean exit", async (t) => {
  const shared = await sharedDir(t);
  const [writer] = shared.sources;
  const file = join(shared.annotationsDir, 'a.json');
  assert.equal(shared.annotationsOf(1, 'a')?.[BROKEN], 'operator', "before: the file's own value");

  assert.equal(await writer!.sharedAnnotations!.publishNode('a', { [BROKEN]: '1764700000' }), true);
  assert.equal((await stat(file)).mode & 0o777, 0o644);
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { annotations: { [BROKEN]: '1764700000' } });
  assert.deepEqual(await readdir(shared.annotationsDir), ['a.json'], 'no temporary file left');
  await until('the other source to see the mark', () => shared.annotationsOf(1, 'a')?.[BROKEN] === '1764700000');
  assert.ok(shared.changes[1]! >= 1, 'and it was told of a change');
  assert.equal(shared.annotationsOf(1, 'a')?.['wirelane.io/key'], KEY, "the file's key stays");
  assert.equal(shared.annotationsOf(1, 'b')?.[BROKEN], 'operator', 'b is not touched');

  // Unchanged: not written again (same inode and mtime), and the overlaid object stays the same object.
  const before = await stat(file);
  const object = shared.sources[1]!.snapshot().find((o) => o.object.metadata?.name === 'a')?.object;
  assert.equal(await writer!.sharedAnnotations!.publishNode('a', { [BROKEN]: '1764700000' }), false);
  const after = await stat(file);
  assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs]);
  assert.equal(await shared.sources[1]!.reload(false), false);
  assert.equal(shared.sources[1]!.snapshot().find((o) => o.object.metadata?.name === 'a')?.object, object, 'the same object: not decoded again');

  // Another annotation merges with what the file holds; null removes one.
  assert.equal(await writer!.sharedAnnotations!.publishNode('a', { [DISCOVERED]: '{}' }), true);
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { annotations: { [BROKEN]: '1764700000', [DISCOVERED]: '{}' } });
  assert.equal(await writer!.sharedAnnotations!.publishNode('a', { [BROKEN]: null }), true);
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { annotations: { [DISCOVERED]: '{}' } });
  await until('the other source to see the removal', () => shared.annotationsOf(1, 'a')?.[DISCOVERED] === '{}' && shared.annotationsOf(1, 'a')?.[BROKEN] === 'operator');

  // A clean exit removes the file, and with it what it shared.
  await writer!.sharedAnnotations!.publishNode('a', { [BROKEN]: '1' });
  await until('the mark', () => shared.annotationsOf(1, 'a')?.[BROKEN] === '1');
  assert.deepEqual(await writer!.sharedAnnotations!.unpublishNode('a'), [file]);
  assert.deepEqual(await writer!.sharedAnnotations!.unpublishNode('a'), [], 'again: nothing to remove');
  await until('the file to take its annotations along', () => shared.annotationsOf(1, 'a')?.[BROKEN] === 'operator' && shared.annotationsOf(1, 'a')?.[DISCOVERED] === undefined);
  assert.deepEqual(shared.errors, [[], []]);
  assert.deepEqual(shared.invalid, [0, 0]);
});

test('a malformed file is rejected alone (one line, one count) and its last good annotations stay; the others keep working', async (t) => {
  const shared = await sharedDir(t);
  const [a, b] = [join(shared.annotationsDir, 'a.json'), join(shared.annotationsDir, 'b.json')];
  await shared.sources[0]!.sharedAnnotations!.publishNode('a', { [BROKEN]: '1' });
  await shared.sources[1]!.sharedAnnotations!.publishNode('b', { [BROKEN]: '2' });
  await until('both marks', () => shared.annotationsOf(0, 'b')?.[BROKEN] === '2' && shared.annotationsOf(0, 'a')?.[BROKEN] === '1');

  await writeFile(b, '{"annotations": {');
  await writeFile(join(shared.annotationsDir, 'ghost.json'), '{"annotations": {}}'); // no Node ghost: nothing to lay it over
  await shared.sources[0]!.sharedAnnotations!.publishNode('a', { [BROKEN]: '3' });
  await until('a to change past the broken b', () => shared.annotationsOf(0, 'a')?.[BROKEN] === '3');
  await until('the error', () => shared.errors[0]!.length > 0);
  assert.equal(shared.annotationsOf(0, 'b')?.[BROKEN], '2', "b's last good mark stays: unknown is not empty");
  // Polled again, an unchanged bad file is not reported again.
  await shared.sources[0]!.reload(false);
  assert.equal(shared.errors[0]!.length, 1, shared.errors[0]!.join('\n'));
  assert.match(shared.errors[0]![0]!, new RegExp(`^${b.replace(/[.]/g, '\\.')}: not JSON \\(.*\\); keeping its last good annotations$`));
  assert.equal(shared.invalid[0], 1);
  assert.equal(shared.sources[0]!.snapshot().some((o) => o.object.metadata?.name === 'ghost'), false);

  // Repaired by its agent: read again.
  await shared.sources[1]!.sharedAnnotations!.publishNode('b', { [BROKEN]: '4' });
  await until("b's new mark", () => shared.annotationsOf(0, 'b')?.[BROKEN] === '4');
});

test("what is not the agent's to share (its key, its endpoint) is ignored with one line and one count; the rest of the file applies", async (t) => {
  const shared = await sharedDir(t);
  await writeFile(
    join(shared.annotationsDir, 'b.json'),
    JSON.stringify({ annotations: { [BROKEN]: '5', 'wirelane.io/key': KEY, 'wirelane.io/endpoint': '203.0.113.66:51820' } }),
  );
  await until('the shared mark', () => shared.annotationsOf(0, 'b')?.[BROKEN] === '5');
  assert.equal(shared.annotationsOf(0, 'b')?.['wirelane.io/key'], OTHER_KEY, "the operator's key stands");
  assert.equal(shared.annotationsOf(0, 'b')?.['wirelane.io/endpoint'], undefined);
  await until('the line', () => shared.errors[0]!.length > 0);
  await shared.sources[0]!.reload(false);
  assert.deepEqual(shared.errors[0], [
    `${join(shared.annotationsDir, 'b.json')}: wirelane.io/key, wirelane.io/endpoint ignored: the annotations directory carries only wirelane.io/tunnels-broken, wirelane.io/discovered-endpoints, wirelane.io/wireguard-ip, wirelane.io/other-wireguard-ip`,
  ]);
  assert.equal(shared.invalid[0], 1);
});

test('a file over 1 MiB is not read: rejected alone, once, like a malformed one', async (t) => {
  const shared = await sharedDir(t);
  await writeFile(join(shared.annotationsDir, 'b.json'), JSON.stringify({ annotations: { [BROKEN]: 'x'.repeat(MAX_OVERLAY_BYTES) } }));
  await shared.sources[0]!.sharedAnnotations!.publishNode('a', { [BROKEN]: '1' });
  await until('a to change past the big b', () => shared.annotationsOf(0, 'a')?.[BROKEN] === '1');
  await until('the error', () => shared.errors[0]!.length > 0);
  // Polled again, the unchanged file is not reported again.
  await shared.sources[0]!.reload(false);
  assert.equal(shared.annotationsOf(0, 'b')?.[BROKEN], 'operator');
  assert.equal(shared.errors[0]!.length, 1, shared.errors[0]!.join('\n'));
  assert.match(shared.errors[0]![0]!, /b\.json: \d+ bytes, more than 1048576; keeping its last good annotations$/);
  assert.equal(shared.invalid[0], 1);
});
