// The agent's --annotations-dir: the file source's, an absolute path, refused with the Kubernetes source.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs } from 'node:util';
import { UsageError } from '../../src/cli/command.js';
import { agent, parseAgentConfig } from '../../src/cli/agent.js';

const parse = (...args: string[]) => parseAgentConfig(parseArgs({ args, options: agent.options, strict: true }).values);

test('--annotations-dir goes with the file source; without it nothing is shared', () => {
  assert.deepEqual(parse('--source', 'file:/etc/c.yaml', '--annotations-dir', '/run/shared').source, { kind: 'file', path: '/etc/c.yaml', annotationsDir: '/run/shared' });
  assert.deepEqual(parse('--source', 'file:/etc/c.yaml').source, { kind: 'file', path: '/etc/c.yaml' });
});

test('--annotations-dir that is relative, or with the Kubernetes source (its Nodes carry them), is a usage error naming the flag', () => {
  assert.throws(() => parse('--source', 'file:/etc/c.yaml', '--annotations-dir', 'shared'), (err: unknown) => err instanceof UsageError && err.message === '--annotations-dir: "shared" is not an absolute path');
  assert.throws(
    () => parse('--source', 'kubernetes', '--kubeconfig', '/etc/kubeconfig', '--annotations-dir', '/run/shared'),
    (err: unknown) => err instanceof UsageError && err.message === '--annotations-dir: only with --source file:PATH',
  );
});
