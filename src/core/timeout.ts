import { UsageError } from "../base/errors";

/**
 * The longest --timeout / timeoutMs: 24 days. Every provider arms one timer with it, and a
 * timer past 2^31-1 ms (24.8 days) fires at once in Bun and Node (TimeoutOverflowWarning), so a
 * longer one is refused rather than silently turned into "now".
 */
export const MAX_TIMEOUT_MS = 24 * 24 * 3600 * 1000;

/** Checks a timeout in milliseconds (undefined: none); `what` names it in the message. */
export function checkTimeoutMs(ms: number | undefined, what = "timeoutMs"): number | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_TIMEOUT_MS) {
    throw new UsageError("bad_timeout", `${what} must be more than 0 and at most 24 days (${MAX_TIMEOUT_MS / 1000} seconds), got ${ms}`);
  }
  // A fraction of a millisecond is still a timeout, not "no timeout" (0 would mean none).
  return Math.max(1, Math.round(ms));
}
