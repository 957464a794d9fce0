// `wirelane status`: what the running agent says about itself, from its /status on --metrics-listen
// (loopback: run it on the node, e.g. `kubectl exec` into the agent's pod). Exit 1 with one line when
// the agent cannot be reached or is not ready; the summary is printed first in the second case.
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { AgentStatus } from '../agent/status.js';
import { isRecord } from '../sources/objects.js';
import { type Command, UsageError } from './command.js';
import { stringFlag } from './flags.js';
import { renderStatus } from './status-text.js';

const DEFAULT_AGENT = 'http://127.0.0.1:1108';
const TIMEOUT_MS = 10_000;

export const status: Command = {
  name: 'status',
  summary: "show the running agent's view: readiness, service proxy mode, mesh, WireGuard peers, syncs",
  usage: 'wirelane status [--agent URL] [-o text|json]',
  help: `Flags:
  --agent URL              the agent's --metrics-listen address (default ${DEFAULT_AGENT}); /status is read there
  -o, --output text|json   text (default), or the agent's /status document as it is

Exits 1 when the agent cannot be reached or is not ready (after printing what it said), with one
line on stderr saying why.`,
  options: {
    agent: { type: 'string', default: DEFAULT_AGENT },
    output: { type: 'string', short: 'o', default: 'text' },
  },
  async run(values) {
    const output = stringFlag(values, 'output');
    if (output !== 'text' && output !== 'json') throw new UsageError(`-o: "${output}" is not text or json`);
    const url = statusUrl(stringFlag(values, 'agent') ?? DEFAULT_AGENT);
    const document = await fetchStatus(url);
    process.stdout.write(output === 'json' ? `${JSON.stringify(document, null, 2)}\n` : renderStatus(document));
    if (document.ready) return 0;
    process.stderr.write(`wirelane: the agent on ${document.node} is not ready: ${document.notReady ?? 'no reason given'}\n`);
    return 1;
  },
};

function statusUrl(agent: string): URL {
  let base: URL;
  try {
    base = new URL(agent);
  } catch {
    throw new UsageError(`--agent: "${agent}" is not a URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--agent: "${agent}" is not an http(s) URL`);
  return new URL('/status', base);
}

async function fetchStatus(url: URL): Promise<AgentStatus> {
  let res: { readonly status: number; readonly body: string };
  try {
    res = await get(url);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`agent at ${url.origin} unreachable: ${e.code ?? e.message}`);
  }
  if (res.status !== 200) throw new Error(`agent at ${url.origin}: GET /status answered ${res.status}: ${res.body.split('\n')[0] ?? ''}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body);
  } catch {
    throw new Error(`agent at ${url.origin}: /status is not JSON`);
  }
  return checkStatus(parsed, url);
}

// node:http, not fetch: fetch refuses the ports browsers block (6000, 6665, …), which an operator
// may well have given --metrics-listen.
function get(url: URL): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsGet : httpGet)(url, { timeout: TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer in ${TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

/** The fields the text and the exit code rely on; an agent of another version may add more. */
function checkStatus(value: unknown, url: URL): AgentStatus {
  const ok =
    isRecord(value) &&
    typeof value['node'] === 'string' &&
    typeof value['ready'] === 'boolean' &&
    typeof value['time'] === 'string' &&
    isRecord(value['serviceProxy']) &&
    isRecord(value['wireguard']) &&
    Array.isArray(value['syncs']) &&
    Array.isArray(value['sources']);
  if (!ok) throw new Error(`agent at ${url.origin}: /status is not a wirelane status document`);
  return value as unknown as AgentStatus; // checked above as far as it is read unguarded
}
