import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, cli, freshEnv, requireMachine } from "../helpers";

requireMachine({ commands: ["tmux"] });

/** Runs the binary inside a real terminal (tmux) and answers its prompt. */
async function inTerminal(args: string[], env: Record<string, string>, home: string, keys: string[]): Promise<{ screen: string; code: number }> {
  const session = `sbx-confirm-${process.pid}-${Date.now()}`;
  const script = join(home, "run.sh");
  const exports = Object.entries(env).map(([k, v]) => `export ${k}='${v.replaceAll("'", "'\\''")}'`).join("\n");
  writeFileSync(script, `${exports}\n'${BINARY}' ${args.map((a) => `'${a}'`).join(" ")}\necho "EXIT:$?" > '${home}/exit'\nsleep 30\n`);
  Bun.spawnSync(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30", `sh ${script}`]);
  const capture = () => Bun.spawnSync(["tmux", "capture-pane", "-p", "-t", session]).stdout.toString();
  try {
    for (let i = 0; i < 100 && !capture().includes("Destroy"); i++) await Bun.sleep(100);
    for (const key of keys) {
      Bun.spawnSync(["tmux", "send-keys", "-t", session, key]);
      await Bun.sleep(150);
    }
    for (let i = 0; i < 100 && !(await Bun.file(join(home, "exit")).exists()); i++) await Bun.sleep(100);
    const exit = await Bun.file(join(home, "exit")).text();
    return { screen: capture(), code: Number(/EXIT:(\d+)/.exec(exit)?.[1]) };
  } finally {
    Bun.spawnSync(["tmux", "kill-session", "-t", session]);
  }
}

test("destroy --all asks on a terminal; no keeps the sandboxes, yes destroys them", async () => {
  const { env, home } = freshEnv();
  await cli(["run", "--keep", "-l", "tier=dev", "true"], { env });
  const declined = await inTerminal(["destroy", "--all", "-l", "tier=dev"], env, home, ["n", "Enter"]);
  expect(declined.screen).toContain("Destroy 1 sandbox(es)?");
  expect(declined.code).toBe(1);
  expect(JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes.length).toBe(1);
  await Bun.$`rm -f ${join(home, "exit")}`;
  const accepted = await inTerminal(["destroy", "--all", "-l", "tier=dev"], env, home, ["y", "Enter"]);
  expect(accepted.code).toBe(0);
  expect(JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes).toEqual([]);
}, 60_000);
