// Abuses an agent's HTTP listeners from inside its node's namespace and prints what happened as JSON
// (run by test/integration/agent-http-abuse.test.ts through `ip netns exec`). Each kind of abuse comes
// from its own loopback address, as from another pod; the health prober uses 127.0.0.1, as the kubelet
// uses its own address.
import { request } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const [healthPort, metricsPort, malformedCount] = process.argv.slice(2).map(Number) as [number, number, number];

const MALFORMED: readonly (string | Buffer)[] = [
  'GET //[ HTTP/1.1\r\nhost: x\r\n\r\n',
  'GET http://[::1 HTTP/1.1\r\n\r\n',
  'GET /%zz%00 HTTP/1.1\r\nhost: x\r\n\r\n',
  'GET /healthz HTTP/9.9\r\n\r\n',
  'BREW /healthz HTTP/1.1\r\nhost: x\r\n\r\n',
  'POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello',
  'GET /healthz\r\n\r\n',
  'GET /../../etc/passwd HTTP/1.1\r\nhost: x\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nhost: x\r\nx: a\nb\r\n\r\n',
  `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(64 * 1024)}\r\n\r\n`,
  `GET /healthz HTTP/1.1\r\n${Array.from({ length: 3000 }, (_, i) => `h${i}: v`).join('\r\n')}\r\n\r\n`,
  `GET /${'a'.repeat(32 * 1024)} HTTP/1.1\r\n\r\n`,
  '\r\n\r\nGARBAGE\r\n\r\n',
  Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]), // a TLS ClientHello
];

/** Sends one raw request; resolves with its status code, 'closed' (no answer) or 'timeout'. */
function raw(port: number, from: string, payload: string | Buffer): Promise<number | 'closed' | 'timeout'> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: from });
    let answer = '';
    const done = (result: number | 'closed' | 'timeout') => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(3_000, () => done('timeout'));
    socket.on('connect', () => socket.write(payload, () => {}));
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer);
      if (m) done(Number(m[1]));
    });
    socket.on('error', () => done('closed'));
    socket.on('close', () => done('closed'));
  });
}

function get(port: number, path: string, from = '127.0.0.1'): Promise<number | 'failed'> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress: from, timeout: 2_000, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve('failed'));
    req.end();
  });
}

async function malformed(count: number): Promise<Record<string, number>> {
  const results: Record<string, number> = {};
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const r = await raw(healthPort, '127.0.0.2', MALFORMED[i % MALFORMED.length]!);
      results[String(r)] = (results[String(r)] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return results;
}

/** Connections that send a header byte every half second: each is ended by the server, when? */
async function slowClients(count: number, forMs: number): Promise<{ endedByServer: number; stillOpen: number }> {
  let endedByServer = 0;
  let stillOpen = 0;
  await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<void>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: healthPort, localAddress: '127.0.0.3' });
        const started = Date.now();
        let ended = false;
        const end = () => {
          if (!ended) endedByServer++;
          ended = true;
          clearInterval(drip);
          resolve();
        };
        const header = 'GET /healthz HTTP/1.1\r\nx-slow: ' + 'a'.repeat(1000);
        let at = 0;
        const drip = setInterval(() => {
          if (Date.now() - started > forMs) {
            ended = true;
            stillOpen++;
            socket.destroy();
            clearInterval(drip);
            resolve();
            return;
          }
          if (at < header.length) socket.write(header[at++]!);
        }, 500);
        socket.on('error', () => {});
        socket.on('close', end);
      }),
    ),
  );
  return { endedByServer, stillOpen };
}

/** Connections opened and never used, held for `forMs`; how many the server kept. */
async function idleConnections(count: number, forMs: number): Promise<{ keptToEnd: number }> {
  let keptToEnd = 0;
  await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<void>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: healthPort, localAddress: '127.0.0.4' });
        const timer = setTimeout(() => {
          keptToEnd++;
          socket.destroy();
          resolve();
        }, forMs);
        socket.on('error', () => {});
        socket.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      }),
    ),
  );
  return { keptToEnd };
}

async function concurrentSvg(count: number): Promise<Record<string, number>> {
  const codes = await Promise.all(Array.from({ length: count }, () => get(metricsPort, '/graph?format=svg', '127.0.0.5')));
  const results: Record<string, number> = {};
  for (const c of codes) results[String(c)] = (results[String(c)] ?? 0) + 1;
  return results;
}

let probing = true;
const probes = { answered: 0, failed: 0 };
const prober = (async () => {
  while (probing) {
    if ((await get(healthPort, '/healthz')) === 'failed') probes.failed++;
    else probes.answered++;
    await sleep(100);
  }
})();

const [malformedResults, slow, idle, svg] = await Promise.all([malformed(malformedCount), slowClients(100, 9_000), idleConnections(300, 9_000), concurrentSvg(12)]);
probing = false;
await prober;
const exposure = {
  metricsOnHealthPort: await get(healthPort, '/metrics'),
  graphOnHealthPort: await get(healthPort, '/graph'),
};
console.log(JSON.stringify({ malformed: malformedResults, slow, idle, svg, probes, exposure }));
