import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBinary, makeHome, run, sandboxIds, Terminal, type TestHome } from "./_pty-helpers";
import { type PtyProvider, ptyProviderNames, startPtyProvider } from "./_pty-providers";
import { requireMachine } from "../helpers";

let home: TestHome;
let terminal: Terminal | undefined;

requireMachine({ commands: ["tmux", "pgrep"] });
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
 * The terminal behaviours run against local, docker (busybox test image) and the fake-backed
 * E2B, Daytona and Modal; SANDBOXES_PTY_PROVIDERS narrows that for a run by hand.
 */
const READY = "echo READY-$((40+2))";

/** Waits until the remote shell answers, whatever its prompt looks like. */
async function ready(terminal: Terminal): Promise<void> {
  await terminal.waitFor(/\S/);
  terminal.type(READY);
  await terminal.waitFor(/^READY-42$/m);
}

/**
 * A `sleep` no other test run on this machine types: every backend here runs its commands as
 * processes of this machine (the fakes as local processes, docker in containers), so the test
 * can watch the very process come and go.
 */
let naps = 0;
const nap = () => `sleep ${7_000_000 + ((process.pid * 10 + naps++) % 1_000_000)}`;

for (const name of ptyProviderNames()) {
  describe(`sandboxes shell in a real terminal (tmux, provider ${name})`, () => {
    let provider: PtyProvider;
    beforeAll(async () => {
      provider = await startPtyProvider(name, home);
    }, 60_000);
    afterAll(async () => provider?.stop());

    const open = (args: string[] = [], size?: { cols: number; rows: number }) => new Terminal(home, ["shell", "-p", name, ...provider.args, ...args], size, provider.env);
    /** The backend holds no sandbox of ours (docker removes a destroyed container in the background). */
    async function noneLeft(): Promise<void> {
      const deadline = Date.now() + 30_000;
      while ((await provider.live()).length > 0 && Date.now() < deadline) await Bun.sleep(200);
      expect(await provider.live()).toEqual([]);
    }

    test("a login shell starts; stty size follows the terminal at attach and after a resize (or the one notice says it cannot)", async () => {
      terminal = open([], { cols: 100, rows: 30 });
      await ready(terminal);
      terminal.type("echo SIZE-$(stty size | tr ' ' x) LOGIN-$(shopt -q login_shell 2>/dev/null && echo yes || echo sh)");
      await terminal.waitFor(/^SIZE-30x100 LOGIN-(yes|sh)$/m);
      terminal.resize(120, 40);
      if (provider.resize) {
        // The resize travels asynchronously (SIGWINCH, then the provider's resize call), so a
        // command typed at once may still see the old size: ask again until the new one shows.
        let resized = false;
        for (let attempt = 0; attempt < 20 && !resized; attempt++) {
          terminal.type("echo RESIZED-$(stty size | tr ' ' x)");
          resized = await terminal.waitFor(/^RESIZED-40x120$/m, 1000).then(() => true, () => false);
        }
        expect(resized).toBe(true);
        expect(terminal.screen()).not.toContain("cannot resize");
      } else {
        terminal.type("echo RESIZED-$(stty size | tr ' ' x)");
        // Modal's SDK cannot resize: said once at attach, and the session goes on at its size.
        const screen = await terminal.waitFor(/^RESIZED-30x100$/m);
        expect(screen.match(new RegExp(`provider ${name} cannot resize the remote terminal: it stays 100x30`, "g"))?.length).toBe(1);
      }
      terminal.type("exit 0");
      expect(await terminal.exitCode()).toBe(0);
    }, 90_000);

    test("the shell's terminal is one inside the sandbox: `tty` names a device the sandbox has", async () => {
      terminal = open();
      await ready(terminal);
      // (In a local sandbox the outer terminal's /dev/pts/N is not there: it needs one of its own.)
      terminal.type('t=$(tty) && test -c "$t" && echo "TERMINAL-${t#/dev/}" || echo NO-TERMINAL');
      await terminal.waitFor(/^TERMINAL-(pts\/\d+|tty\w*|console)$/m);
      terminal.type("exit 0");
      expect(await terminal.exitCode()).toBe(0);
    }, 60_000);

    test("Ctrl-C interrupts the remote foreground command and the session goes on; arrows reach the remote shell", async () => {
      terminal = open();
      await ready(terminal);
      const sleep = nap();
      terminal.type(sleep);
      await waitForProcess(sleep, true);
      terminal.keys("C-c");
      await waitForProcess(sleep, false);
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

    test("Ctrl-Z suspends the remote foreground job and a full-screen editor (the image's vi) works through the PTY", async () => {
      terminal = open();
      await ready(terminal);
      const sleep = nap();
      terminal.type(sleep);
      await waitForProcess(sleep, true);
      terminal.keys("C-z");
      await terminal.waitFor(new RegExp(`Stopped.*\\s${sleep}`));
      // SIGKILL: busybox ash, unlike bash, does not SIGCONT a stopped job it sends SIGTERM to.
      terminal.type("kill -9 %1; echo KILLED-$((1+1))");
      await terminal.waitFor(/^KILLED-2$/m);
      await waitForProcess(sleep, false);
      // vi: insert mode, Escape and ex commands all have to reach the remote program. Each key
      // waits for vi to show it took the one before: typed ahead, an Escape could merge with
      // the ":" after it into one escape sequence, and vi could swallow what follows ":wq".
      const file = `/tmp/fullscreen-${process.pid}-${naps}.txt`;
      const vi = `${provider.vi.command} ${file}`;
      terminal.type(vi);
      await terminal.waitFor(/^~\s*$/m);
      terminal.keys("i");
      terminal.keys("-l", "typed in vi");
      await terminal.waitFor(/^typed in vi/m);
      await terminal.waitFor(provider.vi.insertMode);
      terminal.keys("Escape");
      await terminal.waitForGone(provider.vi.insertMode);
      terminal.type(":wq");
      await waitForProcess(vi, false);
      terminal.type(`echo FILE-$(cat ${file} | tr ' ' _)`);
      await terminal.waitFor(/^FILE-typed_in_vi$/m);
      terminal.type("exit 0");
      expect(await terminal.exitCode()).toBe(0);
    }, 90_000);

    test("`exit 7` becomes our exit code 7, the terminal settings are restored and the sandbox is gone", async () => {
      terminal = open();
      await ready(terminal);
      expect(await provider.live()).toHaveLength(1);
      // While attached, the local terminal is raw: no line editing, no local signals, no echo.
      expect(terminal.sttyNow()).toMatch(/(?=[\s\S]*-icanon)(?=[\s\S]*-isig)(?=[\s\S]*-echo )/);
      terminal.type("exit 7");
      expect(await terminal.exitCode()).toBe(7);
      expect(terminal.sttyAfter()).toBe(terminal.sttyBefore());
      await noneLeft();
    }, 90_000);

    test("SIGTERM to sandboxes: exit 143, terminal restored, sandbox destroyed", async () => {
      terminal = open();
      await ready(terminal);
      const sleep = nap();
      terminal.type(sleep);
      await waitForProcess(sleep, true);
      process.kill(terminal.pid(), "SIGTERM");
      expect(await terminal.exitCode()).toBe(143);
      expect(terminal.sttyAfter()).toBe(terminal.sttyBefore());
      await waitForProcess(sleep, false);
      await noneLeft();
    }, 90_000);

    test("closing the terminal (SIGHUP) ends the session and destroys the sandbox", async () => {
      terminal = open();
      await ready(terminal);
      const sleep = nap();
      terminal.type(sleep);
      await waitForProcess(sleep, true);
      expect(await provider.live()).toHaveLength(1);
      terminal.close();
      terminal = undefined;
      await waitForProcess(sleep, false);
      await noneLeft();
    }, 90_000);

    test("--keep keeps the sandbox after exit and says how to attach again", async () => {
      terminal = open(["--keep"]);
      await ready(terminal);
      terminal.type("echo kept > ~/marker; exit 3");
      expect(await terminal.exitCode()).toBe(3);
      const screen = terminal.screen();
      const id = /kept sandbox (\S+) on/.exec(screen)?.[1];
      expect(id).toBeDefined();
      expect(screen).toContain(`kept sandbox ${id} on ${name}`);
      expect(screen).toContain(`sandboxes shell ${id} -p ${name}`);
      expect(await provider.live()).toHaveLength(1);
      const again = await run(home, ["shell", id!, "-p", name], { stdin: "cat ~/marker\n", env: provider.env });
      expect(again).toMatchObject({ code: 0, stdout: "kept\n" });
      expect((await run(home, ["destroy", id!, "-p", name], { env: provider.env })).code).toBe(0);
      await noneLeft();
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
