// How bench/datapath-scale.ts loads 30,000 services' iptables rules on the nft backend in minutes
// rather than hours. iptables-nft-restore (1.8.9) spends time quadratic in what one input holds:
// measured with the proxy's own first-sync input (on a loaded 2-core machine, CPU time of the tool),
// 10,000 chain declarations alone cost 0.6 s and 30,000 cost 30 s; the jumps to those chains
// (WLSVC-SERVICES' one per service) 2.6 s at 10,000; and the whole 10,000-service input 19.5 s of
// CPU (78 s elapsed), where 5,000 services cost 3.4 s (perf: a third of it in strcmp, a linear
// search by chain name). At 30,000 services the one restore ran for over 38 minutes. The same
// lines in pieces cost little: the 30,000 declarations 2,000 at a time took 0.5 s of CPU in all,
// then the rules in their order, 10,000 a time (0.2 s each; the jumps from the built-in chains,
// which make it all reachable, come last as in the one input).
// The kernel ends with exactly the rules the one restore would have written (the proxy checks them
// against iptables-save after a full sync); only the atomicity of one restore is given up, which a
// bench filling an empty namespace does not need. The agent itself still writes one restore.
import type { CommandRunner } from '../src/dataplane/iptables/backend.js';

/** Chain declarations, or chain deletions, per restore: the tool's cost grows with the square of them. */
const CHAINS_PER_RESTORE = 2_000;
/** Rule lines per restore. */
const RULES_PER_RESTORE = 10_000;

/**
 * The restore input as several smaller inputs with the same effect: first every chain declaration
 * (which creates or empties a chain), then the rest of each table in its order (additions, jumps
 * and their removal, chain deletions last, as the proxy writes them). Undefined for an input with
 * a line of another kind (kept whole).
 */
export function chunkRestoreInput(input: string): string[] | undefined {
  const tables: Array<{ header: string; declarations: string[]; rest: string[] }> = [];
  for (const line of input.split('\n')) {
    const table = tables.at(-1);
    if (line.startsWith('*')) tables.push({ header: line, declarations: [], rest: [] });
    else if (line === '' || line.startsWith('#') || line === 'COMMIT') continue;
    else if (table === undefined) return undefined;
    else if (line.startsWith(':')) table.declarations.push(line);
    else if (/^-[AIDX] /.test(line)) table.rest.push(line);
    else return undefined;
  }
  const out: string[] = [];
  const restore = (header: string, lines: readonly string[]) => out.push([header, ...lines, 'COMMIT', ''].join('\n'));
  for (const t of tables) for (let i = 0; i < t.declarations.length; i += CHAINS_PER_RESTORE) restore(t.header, t.declarations.slice(i, i + CHAINS_PER_RESTORE));
  for (const t of tables) {
    let piece: string[] = [];
    let deletions = 0;
    for (const line of t.rest) {
      piece.push(line);
      if (line.startsWith('-X ')) deletions++;
      if (piece.length >= RULES_PER_RESTORE || deletions >= CHAINS_PER_RESTORE) {
        restore(t.header, piece);
        [piece, deletions] = [[], 0];
      }
    }
    if (piece.length > 0) restore(t.header, piece);
  }
  return out;
}

/** `run`, with each iptables-restore written in pieces (chunkRestoreInput). */
export function chunkedRestores(run: CommandRunner): CommandRunner {
  return async (file, args, opts) => {
    const pieces = /-restore$/.test(file) && opts?.input !== undefined ? chunkRestoreInput(opts.input) : undefined;
    if (pieces === undefined || pieces.length <= 1) return run(file, args, opts);
    let last: Awaited<ReturnType<CommandRunner>> | undefined;
    for (const input of pieces) {
      last = await run(file, args, { ...opts, input });
      if (last.exitCode !== 0) return last;
    }
    return last!;
  };
}
