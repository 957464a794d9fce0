// The client side of echo/server.ts: COUNT requests, one output line each: the answer, or
// `ERROR <code>` (ECONNREFUSED, ETIMEDOUT, ...). A new connection or socket per request, unless
// --same-socket (UDP: one flow). --interval spaces the requests out.
//   node client.js tcp|udp HOST PORT [--count N] [--interval MS] [--timeout MS] [--same-socket] [--bind ADDRESS]
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    count: { type: 'string', default: '1' },
    interval: { type: 'string', default: '0' },
    timeout: { type: 'string', default: '1000' },
    'same-socket': { type: 'boolean', default: false },
    bind: { type: 'string' },
  },
});
const [protocol, host = '', portText = '0'] = positionals;
const port = Number(portText);
const timeoutMs = Number(values.timeout);

function tcpRequest(): Promise<string> {
  return new Promise((resolve) => {
    let answer = '';
    const socket = connect({ host, port, timeout: timeoutMs, ...(values.bind && { localAddress: values.bind }) });
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer.trim()));
    socket.on('timeout', () => {
      socket.destroy();
      resolve('ERROR ETIMEDOUT');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`ERROR ${err.code ?? err.message}`));
  });
}

function udpRequest(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    // A send error (EPERM when an OUTPUT rule rejects) comes before the ICMP answer that the
    // application sees next; it is the result only when nothing else arrives.
    let sendError: string | undefined;
    const timer = setTimeout(() => done(sendError ?? 'ERROR ETIMEDOUT'), timeoutMs);
    const onMessage = (msg: Buffer) => done(msg.toString().trim());
    const onError = (err: NodeJS.ErrnoException) => done(`ERROR ${err.code ?? err.message}`);
    function done(line: string): void {
      clearTimeout(timer);
      socket.off('message', onMessage);
      socket.off('error', onError);
      resolve(line);
    }
    socket.on('message', onMessage);
    socket.on('error', onError);
    socket.send('ping', (err: NodeJS.ErrnoException | null) => {
      if (err) sendError = `ERROR ${err.code ?? err.message}`;
    });
  });
}

/**
 * A connected socket: an ICMP port unreachable then surfaces as ECONNREFUSED instead of silence.
 * The connect itself may fail (a service proxy refusing at connect()), giving the error code.
 */
async function udpSocket(): Promise<Socket | string> {
  const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    socket.bind({ ...(values.bind && { address: values.bind }) }, () => {
      // With a callback, dgram hands a failed connect to it rather than emitting 'error'.
      socket.connect(port, host, (err?: NodeJS.ErrnoException) => {
        if (!err) return resolve(socket);
        socket.close();
        resolve(`ERROR ${err.code ?? err.message}`);
      });
    });
  });
}

let shared: Socket | undefined;
/** Errors a shared socket reported while no request was waiting. */
const aborted = new WeakMap<Socket, string>();
for (let i = 0; i < Number(values.count); i++) {
  if (i > 0) await sleep(Number(values.interval));
  let line: string;
  if (protocol === 'tcp') {
    line = await tcpRequest();
  } else {
    const broken = shared && aborted.get(shared);
    if (shared && broken) {
      // The socket was ended between requests (an eBPF proxy ends those of a removed backend):
      // report it, and reconnect for the next request as an application would.
      shared.close();
      shared = undefined;
      process.stdout.write(`ERROR ${broken}\n`);
      continue;
    }
    const socket = values['same-socket'] && shared ? shared : await udpSocket();
    if (typeof socket === 'string') {
      line = socket;
    } else {
      if (values['same-socket'] && !shared) {
        shared = socket;
        socket.on('error', (err: NodeJS.ErrnoException) => aborted.set(socket, err.code ?? err.message));
      }
      line = await udpRequest(socket);
      aborted.delete(socket); // an error during the request is its answer already
      if (socket !== shared) socket.close();
    }
  }
  process.stdout.write(`${line}\n`);
}
shared?.close();
