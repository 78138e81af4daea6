import { ProviderError, SandboxesError } from "../base/errors";

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 200, maxDelayMs: 3000 };

/** HTTP statuses worth retrying on an idempotent call. */
export function isTransientStatus(status: number | undefined): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/**
 * A failure of the connection itself (refused, reset, closed, timed out), as fetch and Bun's
 * WebSocket report it, for clients of our own. An abort is ours, never transient.
 */
export function isNetworkFailure(error: unknown): boolean {
  const name = (error as Error)?.name;
  if (name === "TimeoutError") return true;
  if (name === "AbortError") return false;
  const code = (error as { code?: string })?.code;
  if (code && NETWORK_ERROR_CODES.has(code)) return true;
  const message = (error as Error)?.message ?? "";
  return error instanceof TypeError || /socket connection was closed|fetch failed|network|ECONNRESET|connection (?:reset|refused|closed)/i.test(message);
}

const NETWORK_ERROR_CODES = new Set(["ws_open_failed", "ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ConnectionRefused", "ConnectionClosed", "UND_ERR_SOCKET"]);

/**
 * Retries `call` with exponential backoff and jitter while `isTransient(error)` says so.
 * Only for idempotent calls (or creates made idempotent by the caller, e.g. with a client token
 * and a lookup before retrying). After the budget, throws a ProviderError naming what failed.
 * A SandboxesError (ours) is never retried by the callers' predicates and comes out unchanged.
 */
export async function withRetry<T>(
  provider: string,
  what: string,
  call: (attempt: number) => Promise<T>,
  isTransient: (error: unknown) => boolean,
  policy: RetryPolicy = DEFAULT_RETRY,
  signal?: AbortSignal,
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    try {
      return await call(attempt);
    } catch (error) {
      lastError = error;
      if (!isTransient(error) || attempt === policy.attempts || signal?.aborted) break;
      const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      await Bun.sleep(delay / 2 + Math.random() * (delay / 2));
    }
  }
  // Our own errors (an unknown sandbox, a refused option) already say what to do: as they are.
  if (lastError instanceof SandboxesError) throw lastError;
  const message = (lastError as Error)?.message ?? String(lastError);
  const status = (lastError as { status?: number; statusCode?: number })?.status ?? (lastError as { statusCode?: number })?.statusCode;
  throw new ProviderError(provider, `${what} failed: ${message}`, status, undefined, "check the provider's status and your credentials, then retry");
}
