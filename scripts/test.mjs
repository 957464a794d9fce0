#!/usr/bin/env node
// Runs the type check and every test file (test/**/*.test.ts) with Node's test runner, in two
// lanes at once: files that change kernel state (namespaces, links, rules, BPF programs) one after
// another, as they always ran, and the files that touch nothing but processes and memory beside them.
// The second lane's output is held and printed after the first's, so neither interleaves.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// A file changes kernel state when it lives under one of these folders or uses the gate or
// harnesses of the kernel tests.
const KERNEL_DIRS = ['integration', 'bpf', 'dataplane', 'wireguard', 'host', 'sandbox', 'cni', 'deploy'].map((d) => `test/${d}/`);
const KERNEL_IMPORTS = /support\/capability|support\/iptables-backends|bpf\/harness|harness\//;

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.ts') ? [relative(root, path)] : [];
  });
}

const touchesKernel = (file) => KERNEL_DIRS.some((d) => file.startsWith(d)) || KERNEL_IMPORTS.test(readFileSync(join(root, file), 'utf8'));

/** Runs one lane; resolves to its exit status and, when held, its output. */
function lane(files, hold) {
  if (files.length === 0) return Promise.resolve({ status: 0, output: '' });
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', ...files], { cwd: root, stdio: ['ignore', hold ? 'pipe' : 'inherit', hold ? 'pipe' : 'inherit'] });
  const chunks = [];
  child.stdout?.on('data', (c) => chunks.push(c));
  child.stderr?.on('data', (c) => chunks.push(c));
  return new Promise((resolve) => child.on('close', (code) => resolve({ status: code ?? 1, output: Buffer.concat(chunks).toString() })));
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
if (spawnSync(process.execPath, [tsc, '-p', 'tsconfig.check.json'], { stdio: 'inherit', cwd: root }).status !== 0) process.exit(1);

const kernel = files.filter(touchesKernel);
const other = files.filter((f) => !touchesKernel(f));
const [kernelLane, otherLane] = await Promise.all([lane(kernel, false), lane(other, true)]);
if (otherLane.output !== '') process.stdout.write(`\n# ${other.length} files without kernel state (run beside the ${kernel.length} above)\n${otherLane.output}`);
process.stdout.write(`\n# kernel lane: ${kernelLane.status === 0 ? 'passed' : 'FAILED'} (${kernel.length} files); other lane: ${otherLane.status === 0 ? 'passed' : 'FAILED'} (${other.length} files)\n`);
process.exit(kernelLane.status === 0 && otherLane.status === 0 ? 0 : 1);
