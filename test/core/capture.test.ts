import { describe, expect, test } from "bun:test";
import { isUtf8 } from "node:buffer";
import fc from "fast-check";
import { isUtf8Chunks, parseSize, StreamCapture } from "../../src/core/capture";

const SEED = Number(process.env.FUZZ_SEED ?? 1313);
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

/** Bytes cut at arbitrary points into chunks. */
const chunked = fc
  .tuple(fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.string({ unit: "binary", maxLength: 24 }).map((s) => new TextEncoder().encode(s))), fc.array(fc.nat(), { maxLength: 6 }))
  .map(([bytes, cuts]) => {
    const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    const chunks: Uint8Array[] = [];
    let from = 0;
    for (const at of [...points, bytes.length]) {
      chunks.push(bytes.slice(from, at));
      from = at;
    }
    return { bytes, chunks };
  });

describe("StreamCapture", () => {
  test("keeps the first LIMIT bytes, counts every byte, and says when it cut", () => {
    const capture = new StreamCapture(5);
    for (const part of ["abc", "defg", "hij"]) capture.push(new TextEncoder().encode(part));
    const result = capture.result();
    expect(new TextDecoder().decode(capture.bytes())).toBe("abcde");
    expect({ totalBytes: result.totalBytes, truncated: result.truncated }).toEqual({ totalBytes: 10, truncated: true });
  });

  test("never cuts a UTF-8 character in half: the kept bytes stay valid text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), fc.nat({ max: 60 }), (text, limit) => {
        const capture = new StreamCapture(limit);
        capture.push(new TextEncoder().encode(text));
        const kept = capture.bytes();
        expect(kept.length).toBeLessThanOrEqual(limit);
        expect(kept.length).toBeGreaterThan(Math.min(limit, Buffer.byteLength(text)) - 4);
        expect(isUtf8(kept)).toBe(true);
        expect(text.startsWith(new TextDecoder().decode(kept))).toBe(true);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  test("a cap of 0 keeps nothing and still counts", () => {
    const capture = new StreamCapture(0);
    capture.push(new Uint8Array(100));
    expect(capture.bytes().length).toBe(0);
    expect(capture.result()).toMatchObject({ totalBytes: 100, truncated: true });
  });
});

describe("isUtf8Chunks", () => {
  test("agrees with isUtf8 of the joined bytes, wherever the chunks are cut", () => {
    fc.assert(
      fc.property(chunked, ({ bytes, chunks }) => {
        expect(isUtf8Chunks(chunks)).toBe(isUtf8(bytes));
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});

describe("parseSize", () => {
  test("bytes and k/m/g suffixes (powers of 1024); anything else is undefined", () => {
    expect([parseSize("0"), parseSize("10"), parseSize("512k"), parseSize("16m"), parseSize("1G"), parseSize("2MiB")]).toEqual([0, 10, 512 * 1024, 16 * 1024 ** 2, 1024 ** 3, 2 * 1024 ** 2]);
    for (const bad of ["", "-1", "1.5m", "1t", "m", "1 m b"]) expect(parseSize(bad)).toBeUndefined();
  });
});
