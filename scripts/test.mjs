#!/usr/bin/env node
// Runs the type check and every test file (test/**/*.test.ts) with Node's test runner.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.ts') ? [relative(root, path)] : [];
  });
}

function run(file, args) {
  const result = spawnSync(file, args, { stdio: 'inherit', cwd: root });
  return result.status ?? 1;
}

// `npm test -- test/mesh` narrows the run to files under the given paths.
const filters = process.argv.slice(2);
const files = findTests(join(root, 'test'))
  .filter((f) => filters.length === 0 || filters.some((p) => f.startsWith(p)))
  .sort();
if (files.length === 0) {
  process.stderr.write('test: no test files found\n');
  process.exit(1);
}
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
if (run(process.execPath, [tsc, '-p', 'tsconfig.check.json']) !== 0) process.exit(1);
process.exit(run(process.execPath, ['--import', 'tsx', '--test', ...files]));
