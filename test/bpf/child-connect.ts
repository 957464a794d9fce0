// Child of cgroup.test.ts: once told "go" on stdin (after the test has moved it into a cgroup),
// makes one TCP connection to 127.0.0.1:PORT and exits.
import { connect } from 'node:net';

const port = Number(process.argv[2]);
process.stdin.once('data', () => {
  const socket = connect(port, '127.0.0.1', () => {
    socket.end();
    process.exit(0);
  });
  socket.on('error', (error) => {
    process.stderr.write(`connect: ${error.message}\n`);
    process.exit(1);
  });
});
