/**
 * The one signal suite for every provider but local, through the compiled binary against its fake
 * (or, for Docker, the real engine):
 * Ctrl-C and SIGTERM during `run` destroy the sandbox and exit 130 and 143, and Ctrl-C during
 * `exec` in a kept sandbox stops the command's whole tree there while the sandbox stays usable.
 *
 * Every fake (and Docker) runs a sandbox's commands as processes of this machine, in namespaces,
 * so the suite waits for and checks the very processes in /proc, by a unique `sleep` argument.
 *
 *   testSignals(CLOUD_FAKES.e2b());
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { BINARY, cli, keptId, plain } from "../../helpers";
import type { Capabilities } from "../../../src/providers/types";
import { useFake } from "./fakes";

/** What the suite needs of a provider: a cloud fake (suites/fakes.ts) or a real engine (suites/docker.ts). */
export interface SignalTarget {
  name: string;
  capabilities: Capabilities;
  start(): Promise<void>;
  close(): Promise<void>;
  /** The binary's environment. */
  env: Record<string, string>;
  /** Flags every `run` needs here (an image, a label to find its sandboxes by). */
  runArgs?: string[];
  /** Sandboxes that exist now (once any being removed are gone). */
  live(): number | Promise<number>;
  /** Sandboxes made, ever. */
  made(): number | Promise<number>;
}

/** Pids of this machine's processes that are exactly `sleep SECONDS`. */
export function sleeping(seconds: string): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8") === `sleep\0${seconds}\0`;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Waits (bounded) until `check` holds; the caller's expect then says what did not happen. */
async function until(check: () => boolean, tries = 400): Promise<void> {
  for (let i = 0; i < tries && !check(); i++) await Bun.sleep(25);
}

let next = 0;
/** A `sleep` argument no other test (or file) uses: a counter, then this process's pid. */
const uniqueSeconds = () => `${10 + (next++ % 90)}${String(process.pid % 10_000).padStart(4, "0")}`;

/**
 * Starts the binary, waits until `sleeps` processes `sleep seconds` run in the sandbox (and, when
 * the provider streams, its first line has arrived), sends `signal`, and collects the exit code
 * and everything printed. The child never outlives the call.
 */
async function interrupt(args: string[], env: Record<string, string>, seconds: string, sleeps: number, streams: boolean, signal: "SIGINT" | "SIGTERM", whileRunning: () => Promise<void>) {
  const child = Bun.spawn([BINARY, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
  let stdout = "";
  const decoder = new TextDecoder();
  const drained = (async () => {
    for await (const chunk of child.stdout as ReadableStream<Uint8Array>) stdout += decoder.decode(chunk, { stream: true });
  })();
  try {
    await until(() => (!streams || stdout.length > 0) && sleeping(seconds).length === sleeps);
    expect(stdout).toBe(streams ? "started\n" : "");
    expect(sleeping(seconds)).toHaveLength(sleeps);
    await whileRunning();
    child.kill(signal);
    const code = await child.exited;
    await drained;
    return { code, stdout };
  } finally {
    child.kill("SIGKILL");
    clearTimeout(guard);
  }
}

export function testSignals(fake: SignalTarget): void {
  const { name, runArgs = [] } = fake;
  // Without streaming, what the command printed arrives only when it ends: a signal loses it.
  const streams = fake.capabilities.streaming;
  const printed = streams ? "started\n" : "";

  describe(`${name} signals through the compiled binary`, () => {
    useFake(fake);

    for (const [signal, exit] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      test(`${signal} during run destroys the sandbox, stops its command and exits ${exit}`, async () => {
        const [made, live] = [await fake.made(), await fake.live()];
        const seconds = uniqueSeconds();
        const result = await interrupt(["run", "-p", name, ...runArgs, `echo started; sleep ${seconds}; echo finished`], fake.env, seconds, 1, streams, signal, async () => {
          expect(await fake.live()).toBe(live + 1);
        });
        expect(result).toEqual({ code: exit, stdout: printed });
        expect((await fake.made()) - made).toBe(1);
        expect(await fake.live()).toBe(live);
        await until(() => sleeping(seconds).length === 0);
        expect(sleeping(seconds)).toEqual([]);
      }, 60_000);
    }

    test("Ctrl-C during exec in a kept sandbox stops the command's whole tree there; the sandbox stays usable", async () => {
      const id = keptId((await cli(["run", "-p", name, ...runArgs, "--keep", "true"], { env: fake.env })).stderr)!;
      expect(id).toBeDefined();
      const seconds = uniqueSeconds();
      // One sleep in the background (a child of the command), one in the foreground.
      const result = await interrupt(["exec", "-p", name, id, `echo started; sh -c 'sleep ${seconds}' & sleep ${seconds}; echo not-reached`], fake.env, seconds, 2, streams, "SIGINT", async () => {
        expect(await fake.live()).toBeGreaterThan(0);
      });
      expect(result).toEqual({ code: 130, stdout: printed });
      await until(() => sleeping(seconds).length === 0);
      expect(sleeping(seconds)).toEqual([]);
      expect(plain(await cli(["exec", "-p", name, id, "echo still here"], { env: fake.env }))).toEqual({ code: 0, stdout: "still here\n", stderr: "" });
      const live = await fake.live();
      expect((await cli(["destroy", "-p", name, id], { env: fake.env })).code).toBe(0);
      expect(await fake.live()).toBe(live - 1);
    }, 60_000);
  });
}
