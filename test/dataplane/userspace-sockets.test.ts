// The userspace proxy's sockets on loopback, in this process: TCP dialing, half-close and
// backpressure; UDP flows, idle expiry and endpoint removal. No rules, no namespaces, no root.
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { raiseOpenFileLimit, parseOpenFileLimit } from '../../src/dataplane/userspace/open-file-limit.js';
import { ProxyPorts } from '../../src/dataplane/userspace/proxy-ports.js';
import type { ProxySocket } from '../../src/dataplane/userspace/proxy-socket.js';
import { TcpProxy, dial } from '../../src/dataplane/userspace/tcp-proxy.js';
import { UdpProxy } from '../../src/dataplane/userspace/udp-proxy.js';
import { runCommand, spawnProcess } from '../../src/host/command.js';
import { parseIp } from '../../src/model/ip.js';
import type { ServiceBackend } from '../../src/model/service.js';
import { createLogger } from '../../src/observability/logger.js';
import { until } from '../support/wait.js';

const LOOPBACK = '127.0.0.1';
const log = createLogger('silent');
const backend = (port: number): ServiceBackend => ({ ip: parseIp(LOOPBACK), port, local: true });

/** Runs body with the resources it registers closed afterwards, also when it fails. */
async function withCleanup(body: (defer: (close: () => unknown) => void) => Promise<void>): Promise<void> {
  const closers: (() => unknown)[] = [];
  try {
    await body((close) => closers.push(close));
  } finally {
    for (const close of closers.reverse()) await close();
  }
}

async function listening(server: Server): Promise<number> {
  server.listen(0, LOOPBACK);
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Blocks the event loop, as a long GC or a busy agent does: timers expire meanwhile, sockets are not read. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy: nothing else runs
  }
}

/** A backend answering each connection with its name, then closing. */
async function namedServer(name: string, defer: (close: () => unknown) => void): Promise<number> {
  const server = createServer((s) => s.end(`${name}\n`));
  defer(() => new Promise((resolve) => server.close(resolve)));
  return listening(server);
}

/** A port nothing listens on (bound once, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listening(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function tcpRequest(port: number, send?: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const s = connect({ host: LOOPBACK, port });
    s.setEncoding('utf8');
    s.on('data', (d: string) => (answer += d));
    s.on('end', () => resolve(answer.trim()));
    s.on('error', (err: NodeJS.ErrnoException) => resolve(`ERROR ${err.code}`));
    if (send !== undefined) s.end(send);
  });
}

function openTcp(endpoints: ServiceBackend[], defer: (close: () => unknown) => void, affinityTimeoutMs?: number): Promise<TcpProxy> {
  return openProxy(TcpProxy.open({ name: 'test tcp', family: 4, address: LOOPBACK, port: 0, endpoints, affinityTimeoutMs, log }), defer);
}

async function openProxy<P extends ProxySocket>(opening: Promise<P>, defer: (close: () => unknown) => void): Promise<P> {
  const proxy = await opening;
  defer(() => proxy.close());
  return proxy;
}

describe('TCP proxy socket', () => {
  test('spreads connections over every endpoint, round-robin', () =>
    withCleanup(async (defer) => {
      const ports = [await namedServer('a', defer), await namedServer('b', defer), await namedServer('c', defer)];
      const proxy = await openTcp(ports.map(backend), defer);
      const answers: string[] = [];
      for (let i = 0; i < 9; i++) answers.push(await tcpRequest(proxy.port));
      assert.deepEqual([...answers].sort(), ['a', 'a', 'a', 'b', 'b', 'b', 'c', 'c', 'c']);
      assert.deepEqual(answers.slice(3, 6), answers.slice(0, 3));
    }));

  test('an endpoint that refuses is skipped for the next one, within the same connection', () =>
    withCleanup(async (defer) => {
      const proxy = await openTcp([backend(await closedPort()), backend(await namedServer('live', defer))], defer);
      for (let i = 0; i < 4; i++) assert.equal(await tcpRequest(proxy.port), 'live');
    }));

  test('no endpoint: the client is reset at once', () =>
    withCleanup(async (defer) => {
      const proxy = await openTcp([], defer);
      const started = Date.now();
      assert.equal(await tcpRequest(proxy.port, 'hello'), 'ERROR ECONNRESET');
      assert.ok(Date.now() - started < 500);
    }));

  test('half-close: a client that ends its side still gets the whole answer', () =>
    withCleanup(async (defer) => {
      // Answers only once the client has finished sending: the FIN must cross the proxy.
      const server = createServer({ allowHalfOpen: true }, (s) => {
        let got = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => (got += d));
        s.on('end', () => s.end(`got ${got}`));
      });
      defer(() => new Promise((resolve) => server.close(resolve)));
      const proxy = await openTcp([backend(await listening(server))], defer);
      assert.equal(await tcpRequest(proxy.port, 'hello'), 'got hello');
    }));

  test('ClientIP affinity keeps a client on one endpoint', () =>
    withCleanup(async (defer) => {
      const ports = [await namedServer('a', defer), await namedServer('b', defer)];
      const proxy = await openTcp(ports.map(backend), defer, 60_000);
      const answers = new Set<string>();
      for (let i = 0; i < 6; i++) answers.add(await tcpRequest(proxy.port));
      assert.equal(answers.size, 1);
    }));

  test('a removed endpoint gets no new connection; an unchanged one keeps serving', () =>
    withCleanup(async (defer) => {
      const a = backend(await namedServer('a', defer));
      const b = backend(await namedServer('b', defer));
      const proxy = await openTcp([a, b], defer);
      proxy.update([b], undefined);
      for (let i = 0; i < 4; i++) assert.equal(await tcpRequest(proxy.port), 'b');
    }));

  test('a client that does not read stops the backend instead of filling memory', () =>
    withCleanup(async (defer) => {
      const TOTAL = 128 * 1024 * 1024;
      const chunk = Buffer.alloc(64 * 1024, 120);
      let sent = 0;
      let sender: Socket | undefined;
      // Writes as fast as the connection takes it, honouring its own backpressure.
      const server = createServer((s) => {
        sender = s;
        s.on('error', () => {});
        const pump = (): void => {
          while (sent < TOTAL) {
            sent += chunk.length;
            if (!s.write(chunk)) {
              s.once('drain', pump);
              return;
            }
          }
          s.end();
        };
        pump();
      });
      defer(() => {
        sender?.destroy();
        return new Promise((resolve) => server.close(resolve));
      });
      const proxy = await openTcp([backend(await listening(server))], defer);
      const client = connect({ host: LOOPBACK, port: proxy.port });
      defer(() => client.destroy());
      client.pause();
      await once(client, 'connect');
      // Let the socket buffers on both legs fill up, then check that the flow has stopped.
      await until('the backend to stall', async () => {
        const before = sent;
        await sleep(300);
        return sent === before && sent > 0;
      }, 10_000);
      const stats = proxy.stats();
      assert.equal(stats.connections, 1);
      assert.ok(stats.bufferedBytes < 1024 * 1024, `the proxy holds ${stats.bufferedBytes} bytes`);
      assert.ok(sent < TOTAL / 2, `the backend got ${sent} of ${TOTAL} bytes out`);
      // Once the client reads, everything arrives.
      let received = 0;
      client.on('data', (d: Buffer) => (received += d.length));
      client.resume();
      await once(client, 'end');
      assert.equal(received, TOTAL);
    }));

  test('a connection made while the event loop stalled past the dial timeout is taken, not failed', () =>
    withCleanup(async (defer) => {
      const port = await namedServer('a', defer);
      const dialing = dial(backend(port), 4, 50);
      stall(200);
      const socket = await dialing;
      defer(() => socket.destroy());
      assert.equal(socket.remotePort, port);
      await assert.rejects(dial(backend(await closedPort()), 4, 50), /ECONNREFUSED/);
    }));

  test('closing the proxy ends its connections and stops listening', () =>
    withCleanup(async (defer) => {
      const server = createServer((s) => s.on('error', () => {}));
      defer(() => new Promise((resolve) => server.close(resolve)));
      const proxy = await openTcp([backend(await listening(server))], defer);
      const client = connect({ host: LOOPBACK, port: proxy.port });
      client.on('error', () => {});
      await once(client, 'connect');
      await until('the connection to be proxied', () => proxy.stats().connections === 1);
      const closed = once(client, 'close');
      await proxy.close();
      await closed;
      assert.equal(await tcpRequest(proxy.port), 'ERROR ECONNREFUSED');
    }));
});

/** A UDP backend answering each datagram with its name after `delayMs` (then calling `afterReply`). */
async function udpServer(name: string, defer: (close: () => unknown) => void, afterReply?: () => void, delayMs = 0): Promise<number> {
  const s = createSocket('udp4');
  s.on('message', (_m, from) => setTimeout(() => s.send(`${name}\n`, from.port, from.address, afterReply), delayMs));
  s.bind(0, LOOPBACK);
  await once(s, 'listening');
  defer(() => new Promise<void>((resolve) => s.close(() => resolve())));
  return s.address().port;
}

async function udpClient(defer: (close: () => unknown) => void): Promise<UdpSocket> {
  const s = createSocket('udp4');
  s.bind(0, LOOPBACK);
  await once(s, 'listening');
  defer(() => new Promise<void>((resolve) => s.close(() => resolve())));
  return s;
}

/** One datagram out, the answer and the port it came from back (or undefined after timeoutMs). */
async function udpAsk(s: UdpSocket, port: number, timeoutMs = 500): Promise<{ answer: string; fromPort: number } | undefined> {
  const answer = once(s, 'message', { signal: AbortSignal.timeout(timeoutMs) }).then(
    ([msg, from]) => ({ answer: String(msg).trim(), fromPort: (from as { port: number }).port }),
    () => undefined,
  );
  s.send('ping', port, LOOPBACK);
  return answer;
}

function openUdp(endpoints: ServiceBackend[], defer: (close: () => unknown) => void, idleTimeoutMs = 5000, firstReplyWaitMs?: number): Promise<UdpProxy> {
  const opts = { name: 'test udp', family: 4, address: LOOPBACK, port: 0, endpoints, affinityTimeoutMs: undefined, log, idleTimeoutMs } as const;
  return openProxy(UdpProxy.open(firstReplyWaitMs === undefined ? opts : { ...opts, firstReplyWaitMs }), defer);
}

describe('UDP proxy socket', () => {
  test('a client socket is one flow to one endpoint; replies come from the proxy port; new clients take turns', () =>
    withCleanup(async (defer) => {
      const proxy = await openUdp([backend(await udpServer('a', defer)), backend(await udpServer('b', defer))], defer);
      const first = await udpClient(defer);
      const answers = [await udpAsk(first, proxy.port), await udpAsk(first, proxy.port), await udpAsk(first, proxy.port)];
      assert.equal(new Set(answers.map((a) => a?.answer)).size, 1, JSON.stringify(answers));
      assert.ok(answers.every((a) => a?.fromPort === proxy.port));
      const second = await udpClient(defer);
      assert.notEqual((await udpAsk(second, proxy.port))?.answer, answers[0]?.answer);
      assert.equal(proxy.stats().connections, 2);
    }));

  test('a flow ends after the idle timeout', () =>
    withCleanup(async (defer) => {
      const proxy = await openUdp([backend(await udpServer('a', defer))], defer, 100);
      const client = await udpClient(defer);
      assert.equal((await udpAsk(client, proxy.port))?.answer, 'a');
      assert.equal(proxy.stats().connections, 1);
      await until('the idle flow to end', () => proxy.stats().connections === 0, 2000);
    }));

  test('a reply that arrived while the event loop stalled past the idle timeout is delivered', () =>
    withCleanup(async (defer) => {
      // The backend answers, then stalls the loop: the flow's idle timer expires before its socket is read.
      const proxy = await openUdp([backend(await udpServer('slow', defer, () => stall(300)))], defer, 100);
      const client = await udpClient(defer);
      assert.equal((await udpAsk(client, proxy.port, 2000))?.answer, 'slow');
      await until('the idle flow to end', () => proxy.stats().connections === 0, 2000);
    }));

  test('a first reply later than the idle timeout (an endpoint behind a WireGuard handshake) reaches the client', () =>
    withCleanup(async (defer) => {
      const proxy = await openUdp([backend(await udpServer('late', defer, undefined, 400))], defer, 100);
      const client = await udpClient(defer);
      assert.equal((await udpAsk(client, proxy.port, 3000))?.answer, 'late');
      // Answered, the flow is back on the idle timeout.
      await until('the answered flow to end', () => proxy.stats().connections === 0, 2000);
    }));

  test('a flow never answered ends after the first-reply wait', () =>
    withCleanup(async (defer) => {
      const silent = createSocket('udp4');
      silent.bind(0, LOOPBACK);
      await once(silent, 'listening');
      defer(() => new Promise<void>((resolve) => silent.close(() => resolve())));
      const proxy = await openUdp([backend(silent.address().port)], defer, 50, 200);
      const client = await udpClient(defer);
      const arrived = once(silent, 'message');
      client.send('ping', proxy.port, LOOPBACK);
      await arrived;
      assert.equal(proxy.stats().connections, 1);
      await until('the unanswered flow to end', () => proxy.stats().connections === 0, 3000);
    }));

  test('removing the endpoint of a running flow moves the flow to another endpoint', () =>
    withCleanup(async (defer) => {
      const a = backend(await udpServer('a', defer));
      const b = backend(await udpServer('b', defer));
      const proxy = await openUdp([a], defer);
      const client = await udpClient(defer);
      assert.equal((await udpAsk(client, proxy.port))?.answer, 'a');
      proxy.update([b], undefined);
      assert.equal((await udpAsk(client, proxy.port))?.answer, 'b');
    }));

  test('an endpoint that refuses ends the flow; the next datagram goes to the next endpoint', () =>
    withCleanup(async (defer) => {
      const proxy = await openUdp([backend(await closedPort()), backend(await udpServer('live', defer))], defer);
      const client = await udpClient(defer);
      const answers: (string | undefined)[] = [];
      for (let i = 0; i < 3; i++) answers.push((await udpAsk(client, proxy.port, 300))?.answer);
      // At most the first datagram is lost (it went to the refusing endpoint).
      assert.deepEqual(answers.slice(1), ['live', 'live'], JSON.stringify(answers));
    }));

  test('no endpoint: datagrams are dropped, no flow is made', () =>
    withCleanup(async (defer) => {
      const proxy = await openUdp([], defer);
      const client = await udpClient(defer);
      assert.equal(await udpAsk(client, proxy.port, 200), undefined);
      assert.equal(proxy.stats().connections, 0);
    }));
});

describe('proxy ports', () => {
  test('without a range the kernel chooses (port 0)', async () => {
    assert.deepEqual([...new ProxyPorts(undefined).candidates()], [0]);
  });

  test('a range port taken by another process is skipped; ports are not reused at once', async () => {
    const ports = new ProxyPorts({ min: 40000, max: 40003 });
    const inUse = (port: number) => (port === 40000 ? Promise.reject(Object.assign(new Error('taken'), { code: 'EADDRINUSE' })) : Promise.resolve({ port }));
    assert.equal((await ports.bind(inUse)).port, 40001);
    assert.equal((await ports.bind(inUse)).port, 40002);
    ports.release(40001);
    assert.deepEqual([...ports.candidates()], [40003, 40000, 40001]);
    assert.equal((await ports.bind(inUse)).port, 40003);
    assert.equal((await ports.bind(inUse)).port, 40001);
    await assert.rejects(ports.bind(inUse), /proxyPortRange 40000-40003: no free port left/);
  });
});

const CAP_SYS_RESOURCE = 24;
const rootSkip = process.getuid?.() !== 0 && process.env['CI'] !== 'true' ? 'changing another process\'s limits needs root' : false;

async function hasCapability(bit: number): Promise<boolean> {
  const status = (await runCommand('cat', ['/proc/self/status'])).stdout;
  const effective = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
  return ((effective >> BigInt(bit)) & 1n) === 1n;
}

describe('open-file limit', () => {
  test('reads the "Max open files" row', () => {
    const text = 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 unlimited            files\n';
    assert.deepEqual(parseOpenFileLimit(text), { soft: 1024, hard: Infinity });
    assert.equal(parseOpenFileLimit('Max processes 1 1 processes\n'), undefined);
  });

  test('raises a low limit to 64,000 with prlimit, or the soft one to the hard one without CAP_SYS_RESOURCE', { skip: rootSkip }, async () => {
    await runCommand('prlimit', ['--version']);
    const child = spawnProcess('prlimit', ['--nofile=1024:4096', 'sleep', '30'], { stdout: 'ignore', stderr: 'ignore' });
    try {
      await until('prlimit to exec sleep', async () => (await runCommand('cat', [`/proc/${child.pid}/comm`])).stdout.trim() === 'sleep');
      const outcome = await raiseOpenFileLimit({ pid: child.pid });
      const before = { soft: 1024, hard: 4096 };
      if (await hasCapability(CAP_SYS_RESOURCE)) {
        assert.deepEqual(outcome, { status: 'raised', before, limit: { soft: 64_000, hard: 64_000 } });
      } else {
        assert.equal(outcome.status, 'partly');
        assert.deepEqual(outcome.status === 'partly' && [outcome.before, outcome.limit], [before, { soft: 4096, hard: 4096 }]);
        assert.match(outcome.status === 'partly' ? outcome.reason : '', /hard limit 4096 stays .*CAP_SYS_RESOURCE/);
      }
      assert.equal((await raiseOpenFileLimit({ pid: child.pid, want: 2048 })).status, 'enough');
    } finally {
      child.kill('SIGKILL');
      await child;
    }
  });

  test('a missing prlimit is reported, not thrown', async () => {
    const outcome = await raiseOpenFileLimit({ want: Number.MAX_SAFE_INTEGER, run: () => runCommand('wirelane-no-such-prlimit', []) });
    assert.deepEqual(outcome, { status: 'failed', reason: 'prlimit (util-linux) is not installed' });
  });
});
