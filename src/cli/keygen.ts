import { join } from 'node:path';
import { publicKeyOf } from '../model/key.js';
import { writeNewKeyFile } from '../state/key-file.js';
import type { Command } from './command.js';
import { booleanFlag, stringFlag } from './flags.js';

export const DEFAULT_STATE_DIR = '/var/lib/wirelane';

export const keygen: Command = {
  name: 'keygen',
  summary: 'write a new WireGuard private key (0600) and print its public key',
  usage: 'wirelane keygen [--out FILE | --state-dir DIR] [--force]',
  help: `Writes a new private key to FILE (default: <state-dir>/key, state dir ${DEFAULT_STATE_DIR}) and prints
the public key on stdout. An existing key is never replaced without --force.`,
  options: {
    out: { type: 'string' },
    'state-dir': { type: 'string', default: DEFAULT_STATE_DIR },
    force: { type: 'boolean', default: false },
  },
  async run(values) {
    const path = stringFlag(values, 'out') ?? join(stringFlag(values, 'state-dir') ?? DEFAULT_STATE_DIR, 'key');
    const key = await writeNewKeyFile(path, booleanFlag(values, 'force'));
    process.stdout.write(`${publicKeyOf(key)}\n`);
    return 0;
  },
};
