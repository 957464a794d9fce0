// --fast-path: whether this agent runs the fast path. auto runs it where the probe says it can
// (it is safe beside every service mode: flows netfilter translates stay on the stack); on insists;
// off removes what an earlier run left, as a service mode removes the others' state.
import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ensureBpffs } from '../bpf/index.js';
import { defaultBpffsDir } from '../dataplane/ebpf/ebpf-service-proxy.js';
import { FastPathDatapath, removeFastPathLeftovers } from '../dataplane/ebpf/fast-path.js';
import { probeFastPathSupport } from '../dataplane/ebpf/fast-path-support.js';
import type { Logger } from '../observability/logger.js';
import type { AgentConfig } from './config.js';

export class FastPathUnavailableError extends Error {
  override readonly name = 'FastPathUnavailableError';
}

export async function openFastPath(config: Pick<AgentConfig, 'fastPath' | 'bpfDir'>, log: Logger): Promise<FastPathDatapath | undefined> {
  const dir = config.bpfDir ?? defaultBpffsDir();
  if (config.fastPath === 'off') {
    const removed = removeFastPathLeftovers(dir);
    if (removed.length > 0) log.info({ removed }, 'fast path: off; removed what an earlier run left');
    return undefined;
  }
  const support = probeFastPathSupport();
  if (!support.usable) {
    if (config.fastPath === 'on') throw new FastPathUnavailableError(`--fast-path on: ${support.reason ?? 'unavailable'}`);
    log.warn({ reason: support.reason }, 'fast path: not available here; pod traffic takes the stack');
    return undefined;
  }
  await ensureBpffs(dirname(dir));
  mkdirSync(dir, { recursive: true });
  log.info({ dir }, 'fast path: on');
  return new FastPathDatapath({ bpffsDir: dir, log });
}
