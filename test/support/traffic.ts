// Steady traffic through a sandbox while a test injects faults: each flow is one long-running
// client (echo client or ping) sending a request every interval; every answer and every failure is
// counted as it arrives, so a test can assert "0 failed" over exactly the window it cares about.
// A ping answered after the next one was sent is late, not lost (see Counter.unanswered).
import type { SpawnedProcess } from '../../src/host/command.js';
import type { NetnsTarget, Sandbox } from '../../src/sandbox/sandbox.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';
import { dirname, join } from 'node:path';

export interface Flow {
  /** How the flow is named in counts and failure messages, e.g. `pod a0 → ClusterIP tcp`. */
  readonly name: string;
  readonly from: NetnsTarget;
  /** `ping`: ICMP echo (cross-location pings); otherwise a request to the echo server. */
  readonly protocol: 'tcp' | 'udp' | 'ping';
  readonly host: string;
  readonly port?: number;
}

export interface FlowCount {
  readonly sent: number;
  readonly failed: number;
  /** The last few failure lines (`ERROR ETIMEDOUT`, `no answer yet for icmp_seq=12`). */
  readonly failures: readonly string[];
}

/** A run of pings without an answer between two answered ones (SteadyTraffic.outages). */
export interface Outage {
  /** How many requests went unanswered. */
  readonly lost: number;
  /** When the first of them was sent (Date.now() scale). */
  readonly from: number;
  /** From then until the next answer arrived. */
  readonly ms: number;
}

export interface TrafficOptions {
  /** Between two requests of one flow. Default 250 ms (four a second). */
  readonly intervalMs?: number;
  /** A request without an answer within this counts as failed. Default 2000 ms. */
  readonly timeoutMs?: number;
}

interface Counter {
  sent: number;
  failed: number;
  failures: string[];
  /**
   * Pings: sequence numbers `ping -O` reported unanswered when it sent the next one, and when. An
   * answer slower than the interval is late, not lost: each is a failure only once the timeout has
   * passed without its answer.
   */
  unanswered: Map<number, number>;
  /** Pings: each answered request's sequence number, when it was sent and when its answer came (ping's -D clock). */
  answered: { readonly seq: number; readonly sentAt: number; readonly answeredAt: number }[];
}

const echoClient = join(dirname(cliPath()), '..', 'sandbox', 'echo', 'client.js');

export class SteadyTraffic {
  private readonly counters = new Map<string, Counter>();
  private readonly children: SpawnedProcess[] = [];

  private constructor(
    private readonly sandbox: Sandbox,
    private readonly timeoutMs: number,
  ) {}

  /** Starts every flow; the caller stops them with stop() (also when the test fails). */
  static start(sandbox: Sandbox, flows: readonly Flow[], options: TrafficOptions = {}): SteadyTraffic {
    const timeout = options.timeoutMs ?? 2000;
    const traffic = new SteadyTraffic(sandbox, timeout);
    const interval = options.intervalMs ?? 250;
    for (const flow of flows) {
      if (traffic.counters.has(flow.name)) throw new Error(`steady traffic: two flows named "${flow.name}"`);
      const counter: Counter = { sent: 0, failed: 0, failures: [], unanswered: new Map(), answered: [] };
      traffic.counters.set(flow.name, counter);
      const child =
        flow.protocol === 'ping'
          ? // -O reports every request without an answer before the next one is sent; -D stamps each line.
            sandbox.spawn(flow.from, 'ping', ['-n', '-O', '-D', '-i', String(interval / 1000), '-W', String(timeout / 1000), flow.host])
          : sandbox.spawn(flow.from, process.execPath, [
              echoClient,
              flow.protocol,
              flow.host,
              String(flow.port),
              '--count',
              '1000000000',
              '--interval',
              String(interval),
              '--timeout',
              String(timeout),
            ]);
      traffic.children.push(child);
      let partial = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        const lines = (partial + chunk.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) countLine(counter, flow, line);
      });
    }
    return traffic;
  }

  /** Counts so far, per flow. */
  counts(): Record<string, FlowCount> {
    for (const counter of this.counters.values()) failUnanswered(counter, Date.now() - this.timeoutMs);
    return Object.fromEntries([...this.counters].map(([name, c]) => [name, { sent: c.sent, failed: c.failed, failures: [...c.failures] }]));
  }

  /** What happened since `before` (an earlier counts()), per flow. */
  since(before: Record<string, FlowCount>): Record<string, FlowCount> {
    const now = this.counts();
    return Object.fromEntries(
      Object.entries(now).map(([name, c]) => {
        const b = before[name] ?? { sent: 0, failed: 0, failures: [] };
        return [name, { sent: c.sent - b.sent, failed: c.failed - b.failed, failures: c.failed > b.failed ? c.failures : [] }];
      }),
    );
  }

  /** Resolves once every flow has sent `n` more requests than in `before`. */
  async waitSent(before: Record<string, FlowCount>, n: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Object.values(this.since(before)).some((c) => c.sent < n)) {
      if (Date.now() > deadline) throw new Error(`steady traffic: fewer than ${n} requests per flow after ${timeoutMs} ms: ${summary(this.since(before))}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /**
   * A ping flow's outages that began at or after `since` (Date.now() scale): each run of requests
   * without an answer between two answered ones, timed from when the first of them was sent (between
   * its answered neighbours' send times, by sequence number) to the next answer.
   */
  outages(name: string, since = 0): Outage[] {
    const answered = [...(this.counters.get(name)?.answered ?? [])].sort((x, y) => x.seq - y.seq);
    const outages: Outage[] = [];
    for (let i = 1; i < answered.length; i++) {
      const [before, after] = [answered[i - 1]!, answered[i]!];
      const lost = after.seq - before.seq - 1;
      if (lost <= 0) continue;
      const from = before.sentAt + (after.sentAt - before.sentAt) / (lost + 1);
      if (from >= since) outages.push({ lost, from, ms: after.answeredAt - from });
    }
    return outages;
  }

  async stop(): Promise<Record<string, FlowCount>> {
    await Promise.all(this.children.map((child) => this.sandbox.stop(child, 1000).catch(() => {})));
    // No answer can come any more: whatever is still unanswered is lost.
    for (const counter of this.counters.values()) failUnanswered(counter, Infinity);
    return this.counts();
  }
}

/** `name: failed/sent (last failures)` per flow, for assertion messages and the docs. */
export function summary(counts: Record<string, FlowCount>): string {
  return Object.entries(counts)
    .map(([name, c]) => `${name}: ${c.failed}/${c.sent} failed${c.failed > 0 ? ` (${c.failures.join('; ')})` : ''}`)
    .join(', ');
}

/** Total failures over every flow. */
export function totalFailed(counts: Record<string, FlowCount>): number {
  return Object.values(counts).reduce((n, c) => n + c.failed, 0);
}

function countLine(counter: Counter, flow: Flow, line: string): void {
  if (flow.protocol === 'ping') {
    const seq = Number(/icmp_seq=(\d+)/.exec(line)?.[1]);
    const answer = /^\[(\d+\.\d+)\] .*icmp_seq=\d+ .*time=([\d.]+) ms/.exec(line);
    if (answer !== null) {
      // A late answer was counted as sent when ping reported it outstanding.
      if (!counter.unanswered.delete(seq)) counter.sent++;
      const answeredAt = Number(answer[1]) * 1000;
      counter.answered.push({ seq, sentAt: answeredAt - Number(answer[2]), answeredAt });
    } else if (/no answer yet/.test(line)) {
      counter.sent++;
      counter.unanswered.set(seq, Date.now());
    } else if (/Unreachable|unreachable/.test(line)) {
      fail(counter, line);
    }
    return;
  }
  if (line.trim() === '') return;
  if (line.startsWith('ERROR')) fail(counter, line);
  else counter.sent++;
}

/** Pings reported unanswered before `cutoff` (a Date.now() value) and still unanswered are lost. */
function failUnanswered(counter: Counter, cutoff: number): void {
  for (const [seq, since] of counter.unanswered) {
    if (since > cutoff) continue;
    counter.unanswered.delete(seq);
    counter.failed++;
    record(counter, `no answer for icmp_seq=${seq}`);
  }
}

function fail(counter: Counter, line: string): void {
  counter.sent++;
  counter.failed++;
  record(counter, line.trim());
}

function record(counter: Counter, failure: string): void {
  counter.failures.push(failure);
  if (counter.failures.length > 5) counter.failures.shift();
}
