import { describe, expect, test } from "bun:test";
import { ProviderError } from "../../src/base/errors";
import { delayBeforeRetry, MAX_RETRY_AFTER_MS, parseRetryAfter, retryAfterOf, withRetry } from "../../src/providers/retry";

describe("Retry-After", () => {
  const now = Date.parse("2026-12-05T21:00:00Z");

  test("delta-seconds and HTTP dates become milliseconds from now; anything else is no answer", () => {
    expect(parseRetryAfter("1", now)).toBe(1000);
    expect(parseRetryAfter(" 120 ", now)).toBe(120_000);
    expect(parseRetryAfter("Sat, 05 Dec 2026 21:00:07 GMT", now)).toBe(7000);
    expect(parseRetryAfter("Sat, 05 Dec 2026 20:59:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-3", now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  test("read from our clients' retryAfterMs, from a Headers object, and from an SDK's plain header record", () => {
    expect(retryAfterOf({ retryAfterMs: 2000 })).toBe(2000);
    expect(retryAfterOf({ headers: new Headers({ "Retry-After": "3" }) })).toBe(3000);
    expect(retryAfterOf({ headers: { "retry-after": "4" } })).toBe(4000);
    expect(retryAfterOf(new Error("no headers"))).toBeUndefined();
  });

  test("the wait asked for is the delay; beyond the 30 s cap it is one ProviderError saying so", () => {
    expect(MAX_RETRY_AFTER_MS).toBe(30_000);
    expect(delayBeforeRetry("fake", "creating", { retryAfterMs: 1500 }, 1)).toBe(1500);
    expect(() => delayBeforeRetry("fake", "creating", { retryAfterMs: 31_000, status: 429 }, 1)).toThrow(
      "fake: creating was refused: the service asks to wait 31 s before another try, longer than the 30 s sandboxes waits (status 429)",
    );
  });

  test("withRetry gives up at once on a wait beyond the cap: one call, not the whole budget", async () => {
    let calls = 0;
    const refusal = Object.assign(new Error("slow down"), { status: 429, retryAfterMs: 3_600_000 });
    const error = await withRetry("fake", "creating", async () => {
      calls++;
      throw refusal;
    }, () => true).catch((e) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect(calls).toBe(1);
  });
});
