// --fast-path: whether this agent runs the fast path. auto runs it where fast-path-policy.ts says
// it is proven and the probe says the kernel can; on insists (and is refused at once where it
// cannot serve); off removes what an earlier run left, as a service mode removes the others' state.
import { dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import { ensureBpffs } from '../bpf/index.js';
import { defaultBpffsDir } from '../dataplane/ebpf/ebpf-service-proxy.js';
import { FastPathDatapath, removeFastPathLeftovers } from '../dataplane/ebpf/fast-path.js';
import { probeFastPathSupport } from '../dataplane/ebpf/fast-path-support.js';
import type { EbpfSupport } from '../dataplane/ebpf/support.js';
import { errorLine } from '../observability/first-line.js';
import type { Logger } from '../observability/logger.js';
import type { AgentConfig } from './config.js';
import { autoDeclines, fastPathOnRefused, fastPathRefusal } from './fast-path-policy.js';

export class FastPathUnavailableError extends Error {
  override readonly name = 'FastPathUnavailableError';
}

type Choice = Pick<AgentConfig, 'fastPath' | 'serviceProxy' | 'cni'>;

export async function openFastPath(config: Choice & Pick<AgentConfig, 'bpfDir'>, log: Logger): Promise<FastPathDatapath | undefined> {
  const dir = config.bpfDir ?? defaultBpffsDir();
  const declined = config.fastPath === 'auto' ? autoDeclines(config) : undefined;
  if (config.fastPath === 'off' || declined !== undefined) {
    if (declined !== undefined) log.info({ reason: declined }, 'fast path: auto leaves it off here; pod traffic takes the stack');
    removeLeftovers(dir, log);
    return undefined;
  }
  const refusal = fastPathRefusal(config);
  if (refusal !== undefined) throw new FastPathUnavailableError(fastPathOnRefused(refusal));
  // The programs' load is left to the data path's own (over its pins): one verifier run at start,
  // on the thread pool while this thread reads the cluster source.
  const support = probeFastPathSupport(undefined, { load: false });
  if (!support.usable) return unavailable(config, support, dir, log);
  await ensureBpffs(dirname(dir));
  mkdirSync(dir, { recursive: true });
  const datapath = new FastPathDatapath({ bpffsDir: dir, log });
  try {
    await datapath.load();
  } catch (error) {
    // Only the probe's load (no pins) tells a kernel that cannot run the programs from pins this
    // build cannot use: the latter stays the mesh reconcile's error, retried as it was.
    const probed = probeFastPathSupport();
    if (!probed.usable) {
      datapath.close();
      return unavailable(config, probed, dir, log);
    }
    log.warn({ err: errorLine(error) }, 'fast path: loading over the pinned maps failed; the mesh reconcile tries again');
  }
  log.info({ dir }, 'fast path: on');
  return datapath;
}

function unavailable(config: Pick<AgentConfig, 'fastPath'>, support: EbpfSupport, dir: string, log: Logger): undefined {
  if (config.fastPath === 'on') throw new FastPathUnavailableError(`--fast-path on: ${support.reason ?? 'unavailable'}`);
  log.warn({ reason: support.reason }, 'fast path: not available here; pod traffic takes the stack');
  removeLeftovers(dir, log);
  return undefined;
}

/** Without the fast path, an earlier run's programs would keep forwarding on maps nobody updates. */
function removeLeftovers(dir: string, log: Logger): void {
  const removed = removeFastPathLeftovers(dir);
  if (removed.length > 0) log.info({ removed }, 'fast path: off; removed what an earlier run left');
}
