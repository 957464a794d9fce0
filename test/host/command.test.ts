import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { CommandError, formatCommand, runCommand, spawnProcess } from '../../src/host/command.js';
import { DEFAULT_COMMAND_TIMEOUT_MS, configureTimeouts } from '../../src/host/timeouts.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { claimPrefix, releasePrefix } from '../../src/sandbox/registry.js';
import { capabilitySkip } from '../support/capability.js';

const node = process.execPath;

test('a command returns its output and exit code', async () => {
  const result = await runCommand(node, ['-e', 'process.stdout.write("out"); process.stderr.write("err")']);
  assert.deepEqual(result, { stdout: 'out', stderr: 'err', exitCode: 0 });
});

test('arguments are passed as they are, never through a shell', async () => {
  const tricky = ['a b', '$HOME', '`id`', "'quoted'", ';', ''];
  const { stdout } = await runCommand(node, ['-e', 'process.stdout.write(JSON.stringify(process.argv.slice(1)))', ...tricky]);
  assert.deepEqual(JSON.parse(stdout), tricky);
});

test('input goes to stdin', async () => {
  const { stdout } = await runCommand('cat', [], { input: 'line one\nline two\n' });
  assert.equal(stdout, 'line one\nline two');
});

test('a failure throws one line naming the command, exit code and first stderr line', async () => {
  const script = 'process.stderr.write("\\nfirst problem\\nsecond problem\\n"); process.exit(3)';
  await assert.rejects(runCommand(node, ['-e', script]), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.exitCode, 3);
    assert.ok(!e.message.includes('\n'), e.message);
    assert.ok(e.message.startsWith(`${node} -e `), e.message);
    assert.ok(e.message.endsWith(': exit code 3: first problem'), e.message);
    assert.match(e.stderr, /second problem/);
    return true;
  });
});

test('allowFailure returns a non-zero exit instead of throwing', async () => {
  const result = await runCommand(node, ['-e', 'process.exit(7)'], { allowFailure: true });
  assert.equal(result.exitCode, 7);
});

test('a missing binary throws even with allowFailure', async () => {
  await assert.rejects(
    runCommand('wirelane-no-such-binary', ['x'], { allowFailure: true }),
    (e: unknown) => e instanceof CommandError && /^wirelane-no-such-binary x: .*ENOENT/.test(e.message),
  );
});

test('a command past its timeout is killed and reported', async () => {
  const started = Date.now();
  await assert.rejects(runCommand('sleep', ['5'], { timeoutMs: 100 }), {
    name: 'CommandError',
    message: 'sleep 5: timed out after 100 ms',
  });
  assert.ok(Date.now() - started < 4000);
});

/** Gone, or a zombie nobody has reaped yet: either way it runs no more. */
function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

test('a timed-out command that ignores SIGTERM is killed with SIGKILL, with the children holding its output', async () => {
  // The wrapper prints its child's pid; the child inherits the ignored SIGTERM and keeps stdout open.
  const script = "trap '' TERM; sleep 1000 & echo $!; wait";
  const error = await runCommand('sh', ['-c', script], { timeoutMs: 200 }).then(
    () => assert.fail('resolved'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CommandError);
  assert.equal(error.timedOut, true);
  assert.equal(error.reason, 'timed out after 200 ms');
  const child = Number(error.stdout.trim());
  assert.ok(child > 0, `child pid in ${JSON.stringify(error.stdout)}`);
  assert.ok(isGone(child), `sleep ${child} was left running`);
});

test('without a timeout of its own a command gets the default, and each timeout is reported by command name', async () => {
  const reported: string[] = [];
  configureTimeouts({ commandTimeoutMs: 200, onTimeout: (command) => reported.push(command) });
  try {
    await assert.rejects(runCommand('/bin/sleep', ['5']), { message: '/bin/sleep 5: timed out after 200 ms' });
    const explicit = await runCommand(node, ['-e', 'setTimeout(() => {}, 400)'], { timeoutMs: 10_000 });
    assert.equal(explicit.exitCode, 0, 'an explicit timeout wins over the default');
    assert.deepEqual(reported, ['sleep']);
  } finally {
    configureTimeouts({ commandTimeoutMs: DEFAULT_COMMAND_TIMEOUT_MS });
  }
});

test('a timeout that is not positive is refused before anything runs', async () => {
  await assert.rejects(runCommand('true', [], { timeoutMs: 0 }), RangeError);
});

test('formatCommand quotes only what needs quoting', () => {
  assert.equal(formatCommand(['ip', 'addr', 'add', '10.0.0.1/32', 'a b', '']), 'ip addr add 10.0.0.1/32 "a b" ""');
});

test('a spawned process reports its pid and resolves with its exit, never rejecting', async () => {
  const child = spawnProcess(node, ['-e', 'process.stdout.write(String(process.pid)); process.exit(4)']);
  const result = await child;
  assert.equal(result.stdout, String(child.pid));
  assert.equal(result.exitCode, 4);
});

test('spawning a missing binary throws at once', () => {
  assert.throws(() => spawnProcess('wirelane-no-such-binary', []), CommandError);
});

const skip = await capabilitySkip('command tests');

describe('commands inside a network namespace', { skip }, () => {
  let prefix = '';
  let netns = '';
  before(async () => {
    prefix = claimPrefix();
    netns = `${prefix}cmd`;
    await createNetns([netns]);
  });
  after(async () => {
    await deleteNetns([netns]);
    releasePrefix(prefix);
  });

  test('runCommand with netns sees only that namespace', async () => {
    const { stdout } = await runCommand('ip', ['-o', 'link', 'show'], { netns });
    assert.deepEqual(
      stdout.split('\n').map((l) => l.split(':')[1]?.trim()),
      ['lo'],
    );
  });

  test('a process spawned in a namespace keeps its own pid (ip netns exec execs into it)', async () => {
    const child = spawnProcess(node, ['-e', 'process.stdout.write(String(process.pid))'], { netns });
    const result = await child;
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout, String(child.pid));
  });
});
