// Test-only: runs a UserspaceServiceProxy in a process of its own, started inside a sandbox node's
// network namespace, so that its sockets and rules land there (the proxy's sockets always live in
// the namespace of the process that opens them). Driven through files in DIR:
//
//   DIR/options.json       read at start: { hostAddresses: string[], udpIdleTimeoutMs?, proxyPortRange? }
//   DIR/ready              written once the signal handlers are in place (SIGHUP kills before that)
//   DIR/command.json       { seq, command: 'apply', map } | { seq, command: 'cleanup' | 'stats' },
//                          then SIGHUP; bigints (IP values) are written as {"$bigint": "123"}
//   DIR/result-SEQ.json    { seq, ok, written?, error?, failures?, stats? }
//
// SIGTERM: cleanup(), then exit 0.
//   node --import tsx test/dataplane/userspace-runner.ts DIR
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PartialApplyError } from '../../src/dataplane/partial-apply.js';
import { UserspaceServiceProxy } from '../../src/dataplane/userspace/index.js';
import { parseIp } from '../../src/model/ip.js';
import type { ServiceMap } from '../../src/model/service.js';
import { createLogger } from '../../src/observability/logger.js';
import { applyMap } from '../support/apply-map.js';

interface RunnerOptions {
  readonly hostAddresses: readonly string[];
  readonly udpIdleTimeoutMs?: number;
  readonly proxyPortRange?: { min: number; max: number };
}

type Command = { seq: number; command: 'apply'; map: ServiceMap } | { seq: number; command: 'cleanup' | 'stats' };

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: userspace-runner.ts DIR');

const options = JSON.parse(readFileSync(join(dir, 'options.json'), 'utf8')) as RunnerOptions;
const log = createLogger('debug');
const proxy = new UserspaceServiceProxy({
  hostAddress: options.hostAddresses.map(parseIp),
  log,
  ...(options.udpIdleTimeoutMs === undefined ? {} : { udpIdleTimeoutMs: options.udpIdleTimeoutMs }),
  ...(options.proxyPortRange === undefined ? {} : { proxyPortRange: options.proxyPortRange }),
});

function reviveBigints(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && '$bigint' in value) return BigInt((value as { $bigint: string }).$bigint);
  return value;
}

async function run(command: Command): Promise<Record<string, unknown>> {
  try {
    switch (command.command) {
      case 'apply':
        return { ok: true, written: (await applyMap(proxy, command.map)).written };
      case 'cleanup':
        await proxy.cleanup();
        return { ok: true };
      case 'stats':
        return { ok: true, stats: proxy.stats() };
    }
  } catch (err) {
    const failures = err instanceof PartialApplyError ? err.failures : undefined;
    const written = err instanceof PartialApplyError ? err.written : undefined;
    return { ok: false, error: err instanceof Error ? err.message : String(err), failures, written };
  }
}

let queue: Promise<unknown> = Promise.resolve();

process.on('SIGHUP', () => {
  const command = JSON.parse(readFileSync(join(dir, 'command.json'), 'utf8'), reviveBigints) as Command;
  queue = queue.then(async () => {
    const result = { seq: command.seq, ...(await run(command)) };
    // Written whole, then renamed: the test never reads half a file.
    const file = join(dir, `result-${command.seq}.json`);
    writeFileSync(`${file}.tmp`, JSON.stringify(result));
    renameSync(`${file}.tmp`, file);
  });
});

process.on('SIGTERM', () => {
  void queue
    .then(() => proxy.cleanup())
    .then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: err instanceof Error ? err.message : String(err) }, 'cleanup failed');
        process.exit(1);
      },
    );
});

// Signal handlers alone do not keep Node running.
setInterval(() => {}, 1 << 30);
writeFileSync(join(dir, 'ready'), String(process.pid));
log.info({ pid: process.pid }, 'userspace proxy runner ready');
