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

const PROMPT = /sandbox@sandbox:[^\n]*\$ ?$/m;

describe("sandboxes shell in a real terminal (tmux, local provider)", () => {
  test("a login shell prompt appears and stty size follows the terminal at attach and after a resize", async () => {
    terminal = new Terminal(home, ["shell", "-p", "local"], { cols: 100, rows: 30 });
    await terminal.waitFor(PROMPT);
    terminal.type("echo SIZE-$(stty size | tr ' ' x) LOGIN-$(shopt -q login_shell && echo yes)");
    await terminal.waitFor(/^SIZE-30x100 LOGIN-yes$/m);
    terminal.resize(120, 40);
    terminal.type("echo RESIZED-$(stty size | tr ' ' x)");
    await terminal.waitFor(/^RESIZED-40x120$/m);
    terminal.type("exit");
    expect(await terminal.exitCode()).toBe(0);
  }, 60_000);

  test("Ctrl-C interrupts the remote foreground command and the session goes on; arrows reach the remote shell", async () => {
    terminal = new Terminal(home, ["shell", "-p", "local"]);
    await terminal.waitFor(PROMPT);
    terminal.type("sleep 4321");
    await waitForProcess("sleep 4321", true);
    terminal.keys("C-c");
    await waitForProcess("sleep 4321", false);
    terminal.type("echo ALIVE-$((6*7))");
    await terminal.waitFor(/^ALIVE-42$/m);
    // Up arrow recalls the previous line in the remote shell's history.
    terminal.keys("Up");
    terminal.keys("Enter");
    const screen = await terminal.waitFor(/^ALIVE-42$[\s\S]*^ALIVE-42$/m);
    expect(screen.match(/^ALIVE-42$/gm)?.length).toBe(2);
    terminal.type("exit");
    expect(await terminal.exitCode()).toBe(0);
  }, 60_000);

  test("`exit 7` becomes our exit code 7, the terminal settings are restored and the sandbox is gone", async () => {
    terminal = new Terminal(home, ["shell", "-p", "local"]);
    await terminal.waitFor(PROMPT);
    expect(await sandboxIds(home)).toHaveLength(1);
    terminal.type("exit 7");
    expect(await terminal.exitCode()).toBe(7);
    expect(terminal.sttyAfter()).toBe(terminal.sttyBefore());
    expect(await sandboxIds(home)).toEqual([]);
  }, 60_000);

  test("SIGTERM to sandboxes: exit 143, terminal restored, remote command killed, sandbox destroyed", async () => {
    terminal = new Terminal(home, ["shell", "-p", "local"]);
    await terminal.waitFor(PROMPT);
    terminal.type("sleep 4322");
    await waitForProcess("sleep 4322", true);
    process.kill(terminal.pid(), "SIGTERM");
    expect(await terminal.exitCode()).toBe(143);
    expect(terminal.sttyAfter()).toBe(terminal.sttyBefore());
    await waitForProcess("sleep 4322", false);
    expect(await sandboxIds(home)).toEqual([]);
  }, 60_000);

  test("--keep keeps the sandbox after exit and says how to attach again", async () => {
    terminal = new Terminal(home, ["shell", "-p", "local", "--keep"]);
    await terminal.waitFor(PROMPT);
    terminal.type("echo kept > ~/marker; exit 3");
    expect(await terminal.exitCode()).toBe(3);
    const screen = terminal.screen();
    const ids = await sandboxIds(home);
    expect(ids).toHaveLength(1);
    expect(screen).toContain(`kept sandbox ${ids[0]} on local`);
    expect(screen).toContain(`sandboxes shell ${ids[0]}`);
    const again = await run(home, ["shell", ids[0]!], { stdin: "cat ~/marker\n" });
    expect(again).toMatchObject({ code: 0, stdout: "kept\n" });
    expect((await run(home, ["destroy", ids[0]!])).code).toBe(0);
  }, 60_000);
});

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
