/**
 * The one exponential backoff of the agent: every reconnect, reopen and resend delay is computed
 * here, so the growth, the cap and the jitter are written once (issue 15).
 *
 * `delay = min(maxMs, baseMs · factor^(attempt−1)) · (1 + jitterRatio · random())`
 *
 * Jitter only stretches the wait, never shortens it: no retry happens before `baseMs`, and devices
 * that lost the same link together do not retry in lock-step (the "full jitter" family of AWS's
 * "Exponential Backoff and Jitter", upward variant).
 */

/** How a delay grows with the attempt number. */
export interface BackoffPolicy {
  /** The first delay, ms (> 0). */
  baseMs: number;
  /** Growth per further attempt (≥ 1). @default 2 */
  factor?: number;
  /** Cap of the delay before jitter, ms (≥ baseMs). */
  maxMs: number;
  /** Fraction 0–1 by which the delay is stretched at most; 0 gives no jitter. @default 0 */
  jitterRatio?: number;
}

/**
 * The delay before retry number `attempt` (1-based; values below 1 count as 1), in whole ms.
 *
 * @param random — uniform in [0, 1); injected so tests are deterministic. Values outside are
 *   clamped.
 */
export function backoffDelayMs(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.floor(attempt) - 1);
  const factor = policy.factor ?? 2;
  // Cap the exponent before it overflows to Infinity on long outages.
  const grown = policy.baseMs * factor ** Math.min(exponent, 64);
  const base = Math.min(policy.maxMs, grown);
  const jitter = policy.jitterRatio ?? 0;
  const r = jitter === 0 ? 0 : Math.min(Math.max(random(), 0), 1);
  return Math.round(base * (1 + jitter * r));
}
