import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { createLogger } from '../../src/observability/logger.js';
import { FileSource } from '../../src/sources/file/file-source.js';

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
