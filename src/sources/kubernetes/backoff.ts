// How long a reflector waits before its next request after failures. Pure: the random draw comes in.
//
// Exponential from 0.5 s, doubling, capped at 30 s (or less: the agent caps it at its resync period,
// so a change made during an outage is applied within about one resync after it ends), each delay shortened by a random 0–25 %: agents
// that lost the API server together do not come back in lock-step, no delay exceeds the cap, and any
// delay is still more than the one before it (2 × 0.75 > 1) until the cap.

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;
const JITTER = 0.25;

/**
 * The delay before attempt `failures + 1`, after `failures` consecutive failures (0: no wait).
 * `random` is a draw from [0, 1).
 */
export function backoffDelayMs(failures: number, random: number, capMs = BACKOFF_CAP_MS): number {
  if (failures <= 0) return 0;
  // 2^(failures-1) overflows nothing: past 7 failures the cap applies anyway.
  const raw = Math.min(capMs, BACKOFF_BASE_MS * 2 ** Math.min(failures - 1, 16));
  return Math.round(raw * (1 - JITTER * random));
}
