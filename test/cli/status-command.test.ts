// `wirelane status` as a process against a stand-in /status (the compiled CLI, as operators run it):
// the exit code and the one stderr line for not ready, an unusable answer and bad flags.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { AgentStatus } from '../../src/agent/status.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';

const NOT_READY: AgentStatus = {
  node: 'a',
  version: '0.1.0',
  time: '2026-12-02T14:00:00.000Z',
  ready: false,
  notReady: 'no successful apply yet',
  healthy: true,
  serviceProxy: { mode: 'ebpf', chosenBy: 'auto', reasons: [], servicePorts: null },
  mesh: null,
  wireguard: { interface: 'wirelane0', error: null, publicKey: null, listenPort: 51820, peers: [] },
  syncs: [{ loop: 'mesh', lastSuccess: null, lastFailure: { at: '2026-12-02T13:59:59.000Z', error: 'routes: RTNETLINK answers: File exists' }, dueSince: '2026-12-02T13:59:50.000Z', runningSince: null }],
  sources: [],
  lastError: { at: '2026-12-02T13:59:59.000Z', loop: 'mesh', error: 'routes: RTNETLINK answers: File exists' },
};

/** Serves `answer` at /status on a loopback port of the kernel's choosing, for one test. */
async function agent(t: { after: (fn: () => Promise<void>) => void }, answer: { status: number; body: string }): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url !== '/status') return void res.writeHead(404).end('not found\n');
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function wirelane(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath(), ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test('not ready: the summary on stdout, then exit 1 with the reason on one line', async (t) => {
  const url = await agent(t, { status: 200, body: JSON.stringify(NOT_READY) });
  const r = await wirelane('status', '--agent', url);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^Ready: +no: no successful apply yet$/m);
  assert.match(r.stdout, /^Last error: +1s ago \(mesh\): routes: RTNETLINK answers: File exists$/m);
  assert.equal(r.stderr, 'wirelane: the agent on a is not ready: no successful apply yet\n');
});

test('-o json prints the document as the agent sent it', async (t) => {
  const ready = { ...NOT_READY, ready: true, notReady: null, extra: 'from a newer agent' };
  const url = await agent(t, { status: 200, body: JSON.stringify(ready) });
  const r = await wirelane('status', '--agent', `${url}/`, '-o', 'json');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), ready);
  assert.equal(r.stderr, '');
});

test('an answer that is not a status document: exit 1, one line', async (t) => {
  for (const [answer, line] of [
    [{ status: 404, body: 'not found\n' }, /: GET \/status answered 404: not found\n$/],
    [{ status: 200, body: '<html>' }, /: \/status is not JSON\n$/],
    [{ status: 200, body: '{"node": 1}' }, /: \/status is not a wirelane status document\n$/],
  ] as const) {
    const url = await agent(t, answer);
    const r = await wirelane('status', '--agent', url);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^wirelane: agent at ${url.replace(/\./g, '\\.')}${line.source}`));
    assert.equal(r.stdout, '');
  }
});

test('bad flags: exit 2', async () => {
  assert.deepEqual(await wirelane('status', '-o', 'yaml'), { code: 2, stdout: '', stderr: 'wirelane: -o: "yaml" is not text or json\n' });
  assert.deepEqual(await wirelane('status', '--agent', 'localhost:1108'), { code: 2, stdout: '', stderr: 'wirelane: --agent: "localhost:1108" is not an http(s) URL\n' });
});
