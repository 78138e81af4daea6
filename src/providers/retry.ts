import { ProviderError, SandboxesError } from "../base/errors";

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, baseDelayMs: 200, maxDelayMs: 3000 };

/**
 * The longest `Retry-After` we sit out (30 s). A service that asks for more is rate-limiting us
 * for longer than a command line should hang: we give up at once with one line that says so.
 */
export const MAX_RETRY_AFTER_MS = 30_000;

/** A `Retry-After` value (delta-seconds or an HTTP date) as milliseconds from now; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP date names its day and month ("Sun, 06 Nov 1994 08:49:37 GMT"); Date.parse takes "-3" as a year.
  const date = /[a-z]{3}/i.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * The wait a refusal asked for: the `retryAfterMs` our own clients put on their HTTP errors, or a
 * Retry-After among the response headers an SDK error carries (Daytona's `headers`, Connect's `metadata`).
 */
export function retryAfterOf(error: unknown): number | undefined {
  const own = (error as { retryAfterMs?: unknown })?.retryAfterMs;
  if (typeof own === "number") return own;
  // Connect (E2B's envd) keeps the response headers of a refused stream in `metadata`.
  const headers = (error as { headers?: unknown })?.headers ?? (error as { metadata?: unknown })?.metadata;
  if (headers instanceof Headers) return parseRetryAfter(headers.get("retry-after"));
  const value = headers && typeof headers === "object" ? (headers as Record<string, unknown>)["retry-after"] : undefined;
  return typeof value === "string" || typeof value === "number" ? parseRetryAfter(String(value)) : undefined;
}

/**
 * How long to wait before attempt `attempt + 1`: what the service asked for, else exponential
 * backoff with jitter. Throws a ProviderError when the service asks for more than MAX_RETRY_AFTER_MS.
 */
export function delayBeforeRetry(provider: string, what: string, error: unknown, attempt: number, policy: RetryPolicy = DEFAULT_RETRY): number {
  const asked = retryAfterOf(error);
  if (asked !== undefined) {
    if (asked > MAX_RETRY_AFTER_MS) {
      const status = (error as { status?: number; statusCode?: number })?.status ?? (error as { statusCode?: number })?.statusCode;
      throw new ProviderError(
        provider,
        `${what} was refused: the service asks to wait ${Math.ceil(asked / 1000)} s before another try, longer than the ${MAX_RETRY_AFTER_MS / 1000} s sandboxes waits`,
        status,
        undefined,
        "retry later, or check your plan's rate limits",
        "rate_limited",
      );
    }
    return asked;
  }
  const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return delay / 2 + Math.random() * (delay / 2);
}

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
 * Retries `call` while `isTransient(error)` says so, after the wait the refusal asked for
 * (Retry-After, see delayBeforeRetry) or with exponential backoff and jitter.
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
      await Bun.sleep(delayBeforeRetry(provider, what, error, attempt, policy));
    }
  }
  // Our own errors (an unknown sandbox, a refused option) already say what to do: as they are.
  if (lastError instanceof SandboxesError) throw lastError;
  const message = (lastError as Error)?.message ?? String(lastError);
  const status = (lastError as { status?: number; statusCode?: number })?.status ?? (lastError as { statusCode?: number })?.statusCode;
  throw new ProviderError(provider, `${what} failed: ${message}`, status, undefined, "check the provider's status and your credentials, then retry");
}

/**
 * withRetry where each failure first goes through `explain`, which turns what a user can act on
 * into an error of ours (and returns a transient failure as it is, so it is retried).
 */
export function withExplainedRetry<T>(
  provider: string,
  what: string,
  call: (attempt: number) => Promise<T>,
  explain: (error: unknown) => unknown,
  isTransient: (error: unknown) => boolean,
  signal?: AbortSignal,
): Promise<T> {
  return withRetry(
    provider,
    what,
    async (attempt) => {
      try {
        return await call(attempt);
      } catch (error) {
        throw await explain(error);
      }
    },
    isTransient,
    DEFAULT_RETRY,
    signal,
  );
}
