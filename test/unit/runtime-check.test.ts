import { describe, expect, test } from "bun:test";
import { InlineRuntimeCheck } from "../../src/core/runtime-check";
import type { Language } from "../../src/lang/languages";

const language = (needs: string[][]): Language => ({ name: "test", aliases: [], extensions: [], needs, run: "" });

/** Runs the check's script before `program` in a real sh; returns its exit code and raw stderr. */
async function runScript(check: InlineRuntimeCheck, program: string): Promise<{ code: number; stderr: Uint8Array }> {
  const child = Bun.spawn(["sh", "-c", `${check.script}${program}`], { stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).bytes(), child.exited]);
  return { code, stderr };
}

/** What the filter passes on when `bytes` arrive in chunks of `size`, and what it held back at the end. */
function filtered(check: InlineRuntimeCheck, bytes: Uint8Array, size: number): string {
  const out: Uint8Array[] = [];
  const filter = check.stderr((chunk) => out.push(Uint8Array.from(chunk)));
  for (let at = 0; at < bytes.length; at += size) filter(bytes.subarray(at, at + size));
  check.flush((chunk) => out.push(Uint8Array.from(chunk)));
  return Buffer.concat(out).toString("utf8");
}

describe("the runtime check of a program run in one go", () => {
  for (const size of [1, 7, 1 << 16]) {
    test(`runtime there: the program runs and its stderr arrives without the check's line (chunks of ${size} bytes)`, async () => {
      const check = new InlineRuntimeCheck(language([["no-such-runtime-x", "sh"]]), undefined);
      const { code, stderr } = await runScript(check, "echo program-error >&2; exit 3");
      expect(code).toBe(3);
      expect(new TextDecoder().decode(stderr)).toContain("sandboxes-runtime-");
      expect(filtered(check, stderr, size)).toBe("program-error\n");
      expect(() => check.verdict()).not.toThrow();
    });

    test(`runtime missing: exit 125 before the program, nothing of it on stderr, and missing_runtime names it (chunks of ${size} bytes)`, async () => {
      const check = new InlineRuntimeCheck(language([["sh"], ["no-such-runtime-x", "nor-this-one"]]), "alpine:3");
      const { code, stderr } = await runScript(check, "echo program-ran >&2");
      expect(code).toBe(125);
      expect(filtered(check, stderr, size)).toBe("");
      expect(() => check.verdict()).toThrow("no-such-runtime-x/nor-this-one is not installed in this sandbox (image alpine:3), so test cannot run: pass --image with one that has it");
    });
  }

  test("lines before the check's (a shell's warnings) pass on; the program's after it too", async () => {
    const check = new InlineRuntimeCheck(language([["sh"]]), undefined);
    const { stderr } = await runScript(check, "printf 'partial' >&2");
    const before = new TextEncoder().encode("sh: warning: one\nsh: warning: two\n");
    const bytes = Buffer.concat([before, stderr]);
    expect(filtered(check, bytes, 5)).toBe("sh: warning: one\nsh: warning: two\npartial");
  });

  test("a sandbox that ended before the check spoke: what it wrote passes on whole, even without a newline", () => {
    const check = new InlineRuntimeCheck(language([["sh"]]), undefined);
    expect(filtered(check, new TextEncoder().encode("bwrap: cannot start\nno newline"), 4)).toBe("bwrap: cannot start\nno newline");
    expect(() => check.verdict()).not.toThrow();
  });

  test("past 64 KiB without the check's line, the filter stops looking and passes everything on", async () => {
    const check = new InlineRuntimeCheck(language([["sh"]]), undefined);
    const { stderr } = await runScript(check, "");
    const noise = new TextEncoder().encode(`${"x".repeat(100)}\n`.repeat(700));
    const out = filtered(check, Buffer.concat([noise, stderr]), 4096);
    expect(out.length).toBe(noise.length + stderr.length);
    expect(out.endsWith(new TextDecoder().decode(stderr))).toBe(true);
  });
});
