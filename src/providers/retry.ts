import { ProviderError } from "../core/errors";

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
 * Retries `call` with exponential backoff and jitter while `isTransient(error)` says so.
 * Only for idempotent calls (or creates made idempotent by the caller, e.g. with a client token
 * and a lookup before retrying). After the budget, throws a ProviderError naming what failed.
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
  if (lastError instanceof ProviderError) throw lastError;
  const message = (lastError as Error)?.message ?? String(lastError);
  const status = (lastError as { status?: number; statusCode?: number })?.status ?? (lastError as { statusCode?: number })?.statusCode;
  throw new ProviderError(provider, `${what} failed: ${message}`, status, undefined, "check the provider's status and your credentials, then retry");
}
