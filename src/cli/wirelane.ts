// The executable: runs a command and maps failures to one line on stderr and an exit code.
import { UsageError } from './command.js';
import { describeFailure, main } from './main.js';

const argv = process.argv.slice(2);
const verbose = argv.some((a, i) => a === '--log-level=debug' || (a === '--log-level' && argv[i + 1] === 'debug'));
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`wirelane: ${describeFailure(err, verbose)}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
