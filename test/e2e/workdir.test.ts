/**
 * `-w DIR` means the same on every provider (src/core/workdir.ts): a sandbox the command creates
 * gets DIR created; in an existing sandbox a missing DIR is one line and exit 125. Left to the
 * backends it would be 126 on Docker, 127 on Modal, 2 on Daytona, 125 locally and an SDK error
 * on E2B.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ensureBinary, makeHome, run, type TestHome } from "./_pty-helpers";
import { type PtyProvider, ptyProviderNames, startPtyProvider } from "./_pty-providers";

let home: TestHome;
beforeAll(() => {
  ensureBinary();
  home = makeHome("sandboxes-workdir-");
});
afterAll(() => home.cleanup());

for (const name of ptyProviderNames()) {
  describe(`-w on provider ${name}`, () => {
    let provider: PtyProvider;
    beforeAll(async () => {
      provider = await startPtyProvider(name, home);
    }, 60_000);
    afterAll(async () => provider?.stop());
    const cli = (args: string[], stdin?: string) => run(home, args, { env: provider.env, stdin });

    test("run and a new shell create the directory and start there", async () => {
      const ran = await cli(["run", "-p", name, ...provider.args, "-w", "/tmp/wd-run/a b/c", "--", "pwd"]);
      expect(ran.stderr).toBe("");
      expect(ran.stdout).toBe("/tmp/wd-run/a b/c\n");
      expect(ran.code).toBe(0);
      const shell = await cli(["shell", "-p", name, ...provider.args, "-w", "/tmp/wd-shell"], "pwd\n");
      expect(shell.stdout).toBe("/tmp/wd-shell\n");
      expect(shell.code).toBe(0);
    }, 60_000);

    test("exec in an existing sandbox: a missing directory is one line and exit 125, then nothing is left", async () => {
      const sandboxName = `wd-${name}-${process.pid}`;
      const kept = await cli(["run", "-p", name, ...provider.args, "-n", sandboxName, "--keep", "--", "mkdir", "-p", "/tmp/there"]);
      expect(kept.code).toBe(0);
      try {
        const missing = await cli(["exec", "-p", name, sandboxName, "-w", "/tmp/not-there", "--", "echo should-not-run"]);
        expect(missing.stdout).toBe("");
        expect(missing.stderr).toMatch(/^sandboxes: working directory \/tmp\/not-there does not exist in sandbox \S+: create it with `sandboxes exec \S+ 'mkdir -p \/tmp\/not-there'`, or choose another -w\n$/);
        expect(missing.code).toBe(125);
        const json = await cli(["exec", "-p", name, "--json", sandboxName, "-w", "/tmp/not-there", "--", "true"]);
        expect(JSON.parse(json.stdout).error).toMatchObject({ code: "workdir_not_found", exit_code: 125 });
        const present = await cli(["exec", "-p", name, sandboxName, "-w", "/tmp/there", "--", "pwd"]);
        expect(present.stdout).toBe("/tmp/there\n");
        expect(present.code).toBe(0);
        const attach = await cli(["shell", "-p", name, sandboxName, "-w", "/tmp/not-there"], "echo should-not-run\n");
        expect(attach.stdout).toBe("");
        expect(attach.code).toBe(125);
      } finally {
        expect((await cli(["destroy", "-p", name, sandboxName])).code).toBe(0);
      }
      const deadline = Date.now() + 30_000;
      while ((await provider.live()).length > 0 && Date.now() < deadline) await Bun.sleep(200);
      expect(await provider.live()).toEqual([]);
    }, 60_000);
  });
}
