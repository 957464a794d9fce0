// Shared by every property test: one fixed seed, so CI draws the same inputs on every run, and the
// number of inputs each property draws. To explore other inputs, pick another seed:
//   WIRELANE_FC_SEED=42 node --import tsx --test test/properties/*.test.ts
// A failure prints its seed and counterexample path; rerun with that seed to reproduce it, and add the
// shrunk counterexample to counterexamples.test.ts once the decoder is fixed.
import fc from 'fast-check';

const seedText = process.env['WIRELANE_FC_SEED'] ?? '1107';
const SEED = Number(seedText);
if (!Number.isSafeInteger(SEED)) throw new Error(`WIRELANE_FC_SEED: "${seedText}" is not an integer`);

/** The issue asks for at least 10,000 generated inputs per decoder. */
const RUNS = 10_000;

// includeErrorInReport: a failure shows the assertion that failed, not only the counterexample.
fc.configureGlobal({ seed: SEED, numRuns: RUNS, includeErrorInReport: true });

export { fc };
