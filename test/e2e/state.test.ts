/**
 * The state this machine keeps (src/base/store.ts) survives processes writing at once: many
 * `run --keep` in parallel, through the binary, each register their sandbox and none is lost.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Registry } from "../../src/core/registry";
import { cli, keptId, machines } from "../helpers";

const homes = machines();
afterAll(() => homes.removeAll());

test("50 parallel `run --keep` on the local provider: all 50 are registered, `exec` finds each by id without -p", async () => {
  const { env } = homes.machine();
  const runs = await Promise.all(Array.from({ length: 50 }, () => cli(["run", "--keep", "true"], { env })));
  expect(runs.map((r) => r.code)).toEqual(Array(50).fill(0));
  const ids = runs.map((r) => keptId(r.stderr)!);
  expect(new Set(ids).size).toBe(50);

  const stateDir = join(env.XDG_STATE_HOME!, "sandboxes");
  const registered = new Registry(stateDir).entries();
  expect(registered.map((e) => e.id).sort()).toEqual([...ids].sort());
  expect(registered.every((e) => e.provider === "local")).toBe(true);
  // Nothing else keeps state: no JSON file beside the store.
  expect(readdirSync(stateDir).filter((name) => name.endsWith(".json"))).toEqual([]);

  const last = await cli(["exec", ids[49]!, "echo", "found"], { env });
  expect({ code: last.code, stdout: last.stdout }).toEqual({ code: 0, stdout: "found\n" });

  const destroyed = await cli(["destroy", "--all", "--yes"], { env });
  expect(destroyed.code).toBe(0);
  expect(new Registry(stateDir).entries()).toEqual([]);
  expect(existsSync(join(stateDir, "local")) ? readdirSync(join(stateDir, "local")) : []).toEqual([]);
}, 180_000);
