import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSettings } from "../../src/core/config";
import { InterruptedError, SandboxesError } from "../../src/base/errors";
import { type InteractiveIO, openShell, runProgram } from "../../src/core/interactive";
import { Registry } from "../../src/core/registry";
import { PROVIDERS } from "../../src/providers/catalog";
import { LOCAL_CAPABILITIES } from "../../src/providers/local";
import type { ProviderDescriptor, PtySession } from "../../src/providers/types";
import { attach, type LocalTerminal } from "../../src/pty/bridge";
import { FakeProvider } from "../fakes/pty/provider";

const fake = new FakeProvider("fakepty", { ...LOCAL_CAPABILITIES, resize: false, mounts: false });
const noPty = new FakeProvider("fakenopty", { ...LOCAL_CAPABILITIES, pty: false, resize: false });
const registered = PROVIDERS as ProviderDescriptor[];
registered.push(fake.descriptor(), noPty.descriptor());
const stateRoot = mkdtempSync(join(tmpdir(), "sandboxes-interactive-"));
const settings = await loadSettings({ HOME: stateRoot, XDG_STATE_HOME: join(stateRoot, "state"), XDG_CONFIG_HOME: join(stateRoot, "config"), PATH: process.env.PATH });

afterAll(() => {
  registered.splice(registered.indexOf(fake.descriptor()), 2);
  fake.cleanup();
  noPty.cleanup();
  rmSync(stateRoot, { recursive: true, force: true });
});
beforeEach(() => {
  fake.faults = {};
  fake.ptySpecs.length = 0;
  fake.resizes.length = 0;
});

/** A terminal that records raw-mode switches, as process.stdin/stdout would be. */
function fakeTerminal(cols = 90, rows = 20) {
  const input = Object.assign(new EventEmitter(), {
    isTTY: true,
    isRaw: false,
    rawModes: [] as boolean[],
    setRawMode(mode: boolean) {
      this.isRaw = mode;
      this.rawModes.push(mode);
      return this;
    },
    resume() {},
    pause() {},
  });
  let screen = "";
  const output = { isTTY: true, columns: cols, rows, write: (chunk: Uint8Array | string, done?: () => void) => ((screen += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk)), done?.(), true) };
  const terminal = { input, output } as unknown as LocalTerminal;
  return { terminal, input, screen: () => screen };
}

function recordingIO(interactive: boolean, stdin = ""): InteractiveIO & { notices: string[]; out: string[]; attachOptions: Array<{ resize: boolean }> } {
  const notices: string[] = [];
  const out: string[] = [];
  const attachOptions: Array<{ resize: boolean }> = [];
  return {
    interactive,
    notices,
    out,
    attachOptions,
    size: () => ({ cols: 77, rows: 22 }),
    terminalEnv: () => ({ TERM: "xterm-test" }),
    async attach(session: PtySession, options) {
      attachOptions.push({ resize: options.resize });
      const shown = (async () => {
        for await (const chunk of session.output) out.push(new TextDecoder().decode(chunk));
      })();
      const code = await session.exited;
      await shown;
      return code;
    },
    stdin: () => new Response(stdin).body!,
    sink: { stdout: (c) => out.push(new TextDecoder().decode(c)), stderr: (c) => out.push(new TextDecoder().decode(c)), info: (m) => notices.push(m) },
  };
}

const shellTarget = (extra: Partial<Parameters<typeof openShell>[1]["target"]> = {}) => ({ command: "shell", provider: "fakepty", keep: false, labels: {}, ...extra });

describe("pty bridge", () => {
  test("forwards keys and output, sends the size at attach, passes the exit code and leaves raw mode", async () => {
    const session = await fake.openPty!((await fake.create({ labels: {} })).id, { argv: ["sh", "-c", 'read line; echo "got-$line"; exit 4'], env: {}, cols: 10, rows: 5 });
    const { terminal, input, screen } = fakeTerminal(90, 20);
    const attached = attach(session, terminal, { resize: true });
    input.emit("data", Buffer.from("hello\r"));
    expect(await attached).toBe(4);
    expect(screen()).toContain("got-hello");
    expect(input.rawModes).toEqual([true, false]);
    expect(fake.resizes[0]).toEqual([90, 20]);
  });

  test("an abort (our SIGTERM) kills the remote side, returns 143 and restores the terminal", async () => {
    const session = await fake.openPty!((await fake.create({ labels: {} })).id, { argv: ["sleep", "100"], env: {}, cols: 10, rows: 5 });
    const { terminal, input } = fakeTerminal();
    const controller = new AbortController();
    const attached = attach(session, terminal, { resize: false, signal: controller.signal });
    controller.abort("SIGTERM");
    expect(await attached).toBe(143);
    expect(input.rawModes).toEqual([true, false]);
    expect(fake.resizes).toEqual([]);
  });
});

describe("interactive core with a fake provider", () => {
  test("a provider without resize: said once, not a failure; the exit code passes through", async () => {
    const io = recordingIO(true);
    const { id } = await fake.create({ labels: {} });
    const code = await runProgram(fake, id, { argv: ["sh", "-c", "exit 6"], env: {} }, io, new AbortController().signal);
    expect(code).toBe(6);
    expect(io.notices).toEqual(["provider fakepty cannot resize the remote terminal: it stays 77x22"]);
    expect(io.attachOptions).toEqual([{ resize: false }]);
    expect(fake.ptySpecs[0]).toMatchObject({ cols: 77, rows: 22, env: { TERM: "xterm-test" } });
  });

  test("a provider without a PTY: a terminal user gets a clear error and no sandbox is left", async () => {
    const before = noPty.alive.size;
    const error = await openShell(settings, { target: shellTarget({ provider: "fakenopty" }), env: {}, signal: new AbortController().signal }, recordingIO(true)).catch((e) => e);
    expect(error).toBeInstanceOf(SandboxesError);
    expect((error as SandboxesError).message).toBe("provider fakenopty has no interactive terminal");
    expect(noPty.alive.size).toBe(before);
  });

  test("without a terminal the input runs in a login shell through exec", async () => {
    const io = recordingIO(false, "echo piped-$((2+3))\nexit 9\n");
    const code = await openShell(settings, { target: shellTarget({ provider: "fakenopty" }), env: {}, signal: new AbortController().signal }, io);
    expect(code).toBe(9);
    expect(io.out.join("")).toBe("piped-5\n");
    expect(noPty.alive.size).toBe(0);
  });

  test("an error after the sandbox was created destroys it, even with --keep", async () => {
    fake.faults.openPty = new Error("connection refused");
    const before = fake.alive.size;
    const error = await openShell(settings, { target: shellTarget({ keep: true }), env: {}, signal: new AbortController().signal }, recordingIO(true)).catch((e) => e);
    expect((error as Error).message).toBe("connection refused");
    expect(fake.alive.size).toBe(before);
    expect(new Registry(settings.stateDir).entries().filter((e) => e.provider === "fakepty")).toEqual([]);
  });

  test("SIGTERM during the session: InterruptedError and the sandbox is destroyed", async () => {
    const before = fake.alive.size;
    const controller = new AbortController();
    const io = recordingIO(true);
    io.attach = async (session, options) => {
      controller.abort("SIGTERM");
      return attach(session, fakeTerminal().terminal, options);
    };
    const error = await openShell(settings, { target: shellTarget(), env: {}, signal: controller.signal }, io).catch((e) => e);
    expect(error).toBeInstanceOf(InterruptedError);
    expect(fake.alive.size).toBe(before);
  });

  test("a named sandbox is created once, kept and registered, then attached to again", async () => {
    const typingExit = <T extends InteractiveIO>(io: T): T => {
      const plain = io.attach;
      io.attach = (session, options) => (session.write("exit 0\r"), plain(session, options));
      return io;
    };
    const first = typingExit(recordingIO(true));
    expect(await openShell(settings, { target: shellTarget({ name: "dev" }), env: {}, signal: new AbortController().signal }, first)).toBe(0);
    const named = [...fake.alive.values()].filter((r) => r.name === "dev");
    expect(named).toHaveLength(1);
    expect(first.notices.at(-1)).toContain("attach again with `sandboxes shell -n dev -p fakepty`");
    expect(new Registry(settings.stateDir).lookup("dev", "fakepty")).toHaveLength(1);
    const second = typingExit(recordingIO(true));
    expect(await openShell(settings, { target: shellTarget({ name: "dev" }), env: {}, signal: new AbortController().signal }, second)).toBe(0);
    expect([...fake.alive.values()].filter((r) => r.name === "dev")).toEqual(named);
    expect(second.notices[0]).toBe(`attaching to sandbox dev (${named[0]!.id}) on fakepty`);
  });
});
