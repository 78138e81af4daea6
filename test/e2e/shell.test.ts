import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBinary, makeHome, run, sandboxIds, Terminal, type TestHome } from "./_pty-helpers";

let home: TestHome;
let terminal: Terminal | undefined;

beforeAll(() => {
  ensureBinary();
  home = makeHome();
});
afterEach(() => {
  terminal?.close();
  terminal = undefined;
});
afterAll(() => home.cleanup());

/**
 * The terminal behaviours run against every provider named in SANDBOXES_PTY_PROVIDERS
 * (comma-separated; default: local), e.g. "local,docker" once docker is available; the
 * environment of this test process (credentials, fake endpoints) is passed through.
 */
const PROVIDER_NAMES = (process.env.SANDBOXES_PTY_PROVIDERS ?? "local").split(",").map((p) => p.trim()).filter(Boolean);
const READY = "echo READY-$((40+2))";

/** Waits until the remote shell answers, whatever its prompt looks like. */
async function ready(terminal: Terminal): Promise<void> {
  await terminal.waitFor(/\S/);
  terminal.type(READY);
  await terminal.waitFor(/^READY-42$/m);
}

for (const provider of PROVIDER_NAMES) {
  const local = provider === "local";
  const open = (args: string[] = [], size?: { cols: number; rows: number }) => new Terminal(home, ["shell", "-p", provider, ...args], size, passThrough());
  const ids = () => sandboxIds(home, provider);

  describe(`sandboxes shell in a real terminal (tmux, provider ${provider})`, () => {
    test("a login shell starts and stty size follows the terminal at attach and after a resize", async () => {
      terminal = open([], { cols: 100, rows: 30 });
      await ready(terminal);
      terminal.type("echo SIZE-$(stty size | tr ' ' x) LOGIN-$(shopt -q login_shell 2>/dev/null && echo yes || echo sh)");
      await terminal.waitFor(/^SIZE-30x100 LOGIN-(yes|sh)$/m);
      terminal.resize(120, 40);
      terminal.type("echo RESIZED-$(stty size | tr ' ' x)");
      await terminal.waitFor(/^RESIZED-40x120$/m);
      terminal.type("exit 0");
      expect(await terminal.exitCode()).toBe(0);
    }, 90_000);

    test("Ctrl-C interrupts the remote foreground command and the session goes on; arrows reach the remote shell", async () => {
      terminal = open();
      await ready(terminal);
      terminal.type("sleep 4321");
      if (local) await waitForProcess("sleep 4321", true);
      else await Bun.sleep(500);
      terminal.keys("C-c");
      if (local) await waitForProcess("sleep 4321", false);
      // Had the sleep (72 minutes) survived, nothing below could appear before the test times out.
      terminal.type("echo ALIVE-$((6*7))");
      await terminal.waitFor(/^ALIVE-42$/m);
      // Up arrow recalls the previous line in the remote shell's history.
      terminal.keys("Up");
      terminal.keys("Enter");
      const screen = await terminal.waitFor(/^ALIVE-42$[\s\S]*^ALIVE-42$/m);
      expect(screen.match(/^ALIVE-42$/gm)?.length).toBe(2);
      terminal.type("exit 0");
      expect(await terminal.exitCode()).toBe(0);
    }, 90_000);

    test("Ctrl-Z suspends the remote foreground job and a full-screen editor works through the PTY", async () => {
      terminal = open();
      await ready(terminal);
      terminal.type("sleep 4324");
      if (local) await waitForProcess("sleep 4324", true);
      else await Bun.sleep(500);
      terminal.keys("C-z");
      await terminal.waitFor(/Stopped\s+sleep 4324/);
      terminal.type("kill %1; echo KILLED-$((1+1))");
      await terminal.waitFor(/^KILLED-2$/m);
      // vi: insert mode, Escape and ex commands all have to reach the remote program.
      terminal.type("vi -u NONE -N /tmp/fullscreen.txt");
      await terminal.waitFor(/fullscreen\.txt/);
      terminal.keys("i");
      terminal.keys("-l", "typed in vi");
      terminal.keys("Escape");
      terminal.type(":wq");
      terminal.type("echo FILE-$(cat /tmp/fullscreen.txt | tr ' ' _)");
      await terminal.waitFor(/^FILE-typed_in_vi$/m);
      terminal.type("exit 0");
      expect(await terminal.exitCode()).toBe(0);
    }, 90_000);

    test("`exit 7` becomes our exit code 7, the terminal settings are restored and the sandbox is gone", async () => {
      terminal = open();
      await ready(terminal);
      expect(await ids()).toHaveLength(1);
      // While attached, the local terminal is raw: no line editing, no local signals, no echo.
      expect(terminal.sttyNow()).toMatch(/(?=[\s\S]*-icanon)(?=[\s\S]*-isig)(?=[\s\S]*-echo )/);
      terminal.type("exit 7");
      expect(await terminal.exitCode()).toBe(7);
      expect(terminal.sttyAfter()).toBe(terminal.sttyBefore());
      expect(await ids()).toEqual([]);
    }, 90_000);

    test("SIGTERM to sandboxes: exit 143, terminal restored, sandbox destroyed", async () => {
      terminal = open();
      await ready(terminal);
      terminal.type("sleep 4322");
      if (local) await waitForProcess("sleep 4322", true);
      process.kill(terminal.pid(), "SIGTERM");
      expect(await terminal.exitCode()).toBe(143);
      expect(terminal.sttyAfter()).toBe(terminal.sttyBefore());
      if (local) await waitForProcess("sleep 4322", false);
      expect(await ids()).toEqual([]);
    }, 90_000);

    test("closing the terminal (SIGHUP) ends the session and destroys the sandbox", async () => {
      terminal = open();
      await ready(terminal);
      terminal.type("sleep 4325");
      if (local) await waitForProcess("sleep 4325", true);
      expect(await ids()).toHaveLength(1);
      terminal.close();
      terminal = undefined;
      if (local) await waitForProcess("sleep 4325", false);
      const deadline = Date.now() + 30_000;
      while ((await ids()).length > 0 && Date.now() < deadline) await Bun.sleep(200);
      expect(await ids()).toEqual([]);
    }, 90_000);

    test("--keep keeps the sandbox after exit and says how to attach again", async () => {
      terminal = open(["--keep"]);
      await ready(terminal);
      terminal.type("echo kept > ~/marker; exit 3");
      expect(await terminal.exitCode()).toBe(3);
      const screen = terminal.screen();
      const kept = await ids();
      expect(kept).toHaveLength(1);
      expect(screen).toContain(`kept sandbox ${kept[0]} on ${provider}`);
      expect(screen).toContain(`sandboxes shell ${kept[0]} -p ${provider}`);
      const again = await run(home, ["shell", kept[0]!, "-p", provider], { stdin: "cat ~/marker\n", env: passThrough() });
      expect(again).toMatchObject({ code: 0, stdout: "kept\n" });
      expect((await run(home, ["destroy", kept[0]!, "-p", provider], { env: passThrough() })).code).toBe(0);
    }, 90_000);
  });
}

describe("sandboxes shell without a terminal", () => {
  test("`echo … | sandboxes shell` runs the input in a login shell and passes its exit code", async () => {
    const result = await run(home, ["shell", "-p", "local"], { stdin: "echo hi-$((1+2))\nshopt -q login_shell && echo login\nexit 3\n" });
    expect(result).toMatchObject({ code: 3, stdout: "hi-3\nlogin\n" });
    expect(result.stderr).toBe("");
    expect(await sandboxIds(home)).toEqual([]);
  });

  test("-n NAME creates a kept sandbox, and the same name attaches to it again", async () => {
    const first = await run(home, ["shell", "-n", "devbox"], { stdin: "echo one > ~/state; echo made\n" });
    expect(first).toMatchObject({ code: 0, stdout: "made\n" });
    expect(first.stderr).toContain("attach again with sandboxes shell -n devbox");
    const second = await run(home, ["shell", "-n", "devbox"], { stdin: "cat ~/state\n" });
    expect(second).toMatchObject({ code: 0, stdout: "one\n" });
    expect(second.stderr).toMatch(/attaching to sandbox devbox \(local-[0-9a-f]{12}\) on local/);
    const byName = await run(home, ["shell", "devbox"], { stdin: "cat ~/state\n" });
    expect(byName).toMatchObject({ code: 0, stdout: "one\n" });
    expect(await sandboxIds(home)).toHaveLength(1);
    expect((await run(home, ["destroy", "devbox"])).code).toBe(0);
    expect(await sandboxIds(home)).toEqual([]);
  });

  test("an unknown sandbox is one clear line and exit 125", async () => {
    const result = await run(home, ["shell", "no-such-box", "-p", "local"], { stdin: "true\n" });
    expect(result.code).toBe(125);
    expect(result.stderr).toMatch(/^sandboxes: no sandbox "no-such-box" on local/);
    expect(result.stdout).toBe("");
  });

  test("an ID and -n together are a usage error", async () => {
    const result = await run(home, ["shell", "some-id", "-n", "name"], { stdin: "true\n" });
    expect(result.code).toBe(125);
    expect(result.stderr).toContain("give either a sandbox ID|NAME or -n NAME, not both");
  });
});

/** Provider credentials and endpoints from this process's environment (for non-local runs). */
function passThrough(): Record<string, string> {
  const keep = Object.entries(process.env).filter(([key]) => /^(SANDBOXES_|DOCKER_|E2B_|DAYTONA_|MODAL_|SPRITES_|HOPX_|VERCEL_|CLOUDFLARE_)/.test(key) && key !== "SANDBOXES_PTY_PROVIDERS");
  return Object.fromEntries(keep) as Record<string, string>;
}

/** Waits until a process with exactly this command line exists (or no longer does). */
async function waitForProcess(commandLine: string, present: boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = Bun.spawnSync(["pgrep", "-f", `^${commandLine}$`]).exitCode === 0;
    if (found === present) return;
    if (Date.now() > deadline) throw new Error(`process "${commandLine}" ${present ? "never appeared" : "is still running"}`);
    await Bun.sleep(100);
  }
}
