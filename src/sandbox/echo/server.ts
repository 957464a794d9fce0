// A backend for service tests and the demo: answers every TCP connection and UDP datagram with one
// line, `<name> <client address>:<client port>`, so a test sees which backend it reached and the
// source address the backend saw.
//   node server.js NAME [--tcp PORT] [--udp PORT] [--host ADDRESS]
import { createSocket } from 'node:dgram';
import { createServer, isIPv4 } from 'node:net';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { tcp: { type: 'string' }, udp: { type: 'string' }, host: { type: 'string', default: '::' } },
});
const name = positionals[0] ?? 'echo';
const host = values.host ?? '::';

if (values.tcp !== undefined) {
  createServer((socket) => {
    socket.on('error', () => {});
    socket.end(`${name} ${socket.remoteAddress?.replace(/^::ffff:/, '')}:${socket.remotePort}\n`);
  }).listen(Number(values.tcp), host);
}
if (values.udp !== undefined) {
  const socket = createSocket(isIPv4(host) ? 'udp4' : 'udp6');
  socket.on('message', (_msg, from) => socket.send(`${name} ${from.address.replace(/^::ffff:/, '')}:${from.port}\n`, from.port, from.address));
  socket.bind(Number(values.udp), host);
}
process.on('SIGTERM', () => process.exit(0));
