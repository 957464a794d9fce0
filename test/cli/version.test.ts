// `wirelane --version` prints package.json's version, the one the image is tagged with.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';

const ROOT = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..');

test("--version prints package.json's version on stdout and exits 0", () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = spawnSync(process.execPath, [cliPath(), '--version'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `wirelane ${version}\n`);
  assert.equal(r.stderr, '');
});

test('the top-level help names --version', () => {
  const r = spawnSync(process.execPath, [cliPath(), '--help'], { encoding: 'utf8' });
  assert.match(r.stdout, /^ {7}wirelane --version$/m);
});
