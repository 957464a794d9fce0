import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { removeCniConfigFile, writeCniConfigFile } from '../../src/cni/conf-file.js';
import { cniNetworkOf, formatCniConfigList } from '../../src/cni/conflist.js';
import { parseCidr } from '../../src/model/ip.js';

function listText(podCIDR: string, mtu = 1420): string {
  const network = cniNetworkOf({ podCIDRs: [parseCidr(podCIDR)], mtu });
  assert.ok('list' in network);
  return formatCniConfigList(network.list);
}

async function inTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'wirelane-cni-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('the file is written with mode 0644 into a directory made on demand, and only when its text changes', () =>
  inTempDir(async (dir) => {
    const path = join(dir, 'net.d', '10-wirelane.conflist');
    const umask = process.umask(0o077);
    try {
      assert.equal(await writeCniConfigFile(path, listText('10.244.1.0/24')), true);
    } finally {
      process.umask(umask);
    }
    assert.equal((await stat(path)).mode & 0o777, 0o644);
    const before = await stat(path);
    assert.equal(await writeCniConfigFile(path, listText('10.244.1.0/24')), false, 'unchanged text: nothing written');
    assert.equal((await stat(path)).ino, before.ino, 'the same file, not a rewrite');
    assert.equal(await writeCniConfigFile(path, listText('10.244.1.0/24', 1400)), true);
    assert.match(await readFile(path, 'utf8'), /"mtu": 1400/);
    assert.deepEqual(await readdir(join(dir, 'net.d')), ['10-wirelane.conflist'], 'no temporary file left behind');
  }));

test("clean-up removes the agent's own file and leaves another CNI's file of the same name alone", () =>
  inTempDir(async (dir) => {
    const ours = join(dir, '10-wirelane.conflist');
    await writeCniConfigFile(ours, listText('10.244.1.0/24'));
    assert.deepEqual(await removeCniConfigFile(ours), [ours]);
    assert.deepEqual(await readdir(dir), []);
    assert.deepEqual(await removeCniConfigFile(ours), [], 'nothing there: nothing to remove');

    const theirs = join(dir, '10-wirelane.conflist');
    const foreign = JSON.stringify({ cniVersion: '0.4.0', name: 'kilo', plugins: [{ type: 'bridge', bridge: 'kube-bridge' }] });
    await writeFile(theirs, foreign);
    assert.deepEqual(await removeCniConfigFile(theirs), []);
    assert.equal(await readFile(theirs, 'utf8'), foreign);
  }));
