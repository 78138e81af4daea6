/**
 * The npm package's `bin`: `npm pack` + `npm i -g` of the tarball into a temp prefix, then the
 * installed `sandboxes` command under Node (re-executing with Bun) and under Bun.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_VERSION, run, tempHome, which } from "./_release-helpers";

// Spawns binaries, shells and servers: independent of whichever bunfig.toml is in effect.
setDefaultTimeout(60_000);

const home = tempHome("sandboxes-npm-");
const prefix = join(home.home, "prefix");
let installed: string;
const node = which("node")!;
const bun = process.execPath;

beforeAll(async () => {
  const env = { ...(process.env as Record<string, string>), HOME: home.home };
  const packed = await run(["npm", "pack", "--ignore-scripts", "--pack-destination", home.home], { env });
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.stderr}`);
  const tarball = join(home.home, packed.stdout.trim().split("\n").at(-1)!);
  // Dependencies come from the npm cache that `npm install` filled (the registry if missing).
  const cache = (await run(["npm", "config", "get", "cache"], { env: process.env as Record<string, string> })).stdout.trim();
  const result = await run(
    ["npm", "install", "--global", "--prefix", prefix, "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund", "--cache", cache, tarball],
    { env },
  );
  if (result.code !== 0) throw new Error(`npm install -g failed:\n${result.stderr}`);
  installed = join(prefix, "bin/sandboxes");
}, 300_000);
afterAll(() => home.remove(), 120_000);

/** A PATH holding node, and bun only when asked. */
function pathWith(withBun: boolean): string {
  const dir = join(home.home, withBun ? "path-bun" : "path-nobun");
  mkdirSync(dir, { recursive: true });
  try {
    symlinkSync(node, join(dir, "node"));
    if (withBun) symlinkSync(bun, join(dir, "bun"));
  } catch {
    // already linked by an earlier test
  }
  // Only this directory: the shebang finds env by absolute path, env finds node here.
  return dir;
}

describe("npm i -g sandboxes", () => {
  test("the installed command runs under Node by re-executing with Bun", async () => {
    const env = { ...home.env, PATH: pathWith(true) };
    expect(await run([installed, "--version"], { env })).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: "" });
    const providers = await run([installed, "providers", "--json"], { env });
    expect(providers.code).toBe(0);
    expect(JSON.parse(providers.stdout).providers.map((p: { name: string }) => p.name)).toContain("local");
  });

  test("exit codes pass through (usage error = 2)", async () => {
    const env = { ...home.env, PATH: pathWith(true) };
    const result = await run([installed, "list", "--bogus"], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toStartWith('sandboxes: unknown flag --bogus for "list"');
  });

  test("SIGTERM to the Node wrapper reaches sandboxes, which cleans up and exits 143", async () => {
    const env = { ...home.env, PATH: `${pathWith(true)}:/usr/bin:/bin` };
    const proc = Bun.spawn([installed, "run", "echo ready; sleep 30"], { env, stdout: "pipe", stderr: "pipe" });
    const reader = proc.stdout.getReader();
    let seen = "";
    while (!seen.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    expect(seen).toBe("ready\n");
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(143);
    expect(proc.signalCode).toBeNull(); // the wrapper exited with the child's code, not of the signal
    const left = await run([installed, "list", "--json"], { env });
    expect(left.code).toBe(0);
    expect(JSON.stringify(JSON.parse(left.stdout))).not.toContain("local-");
  }, 60_000);

  // The package runs from its sources, and carries sandbox-start in dist/ (startHelper).
  test.skipIf(process.platform !== "linux")("a one-shot local run starts its program through the package's sandbox-start", async () => {
    const env = { ...home.env, PATH: `${pathWith(true)}:/usr/bin:/bin` };
    const result = await run([installed, "run", "-p", "local", "--network", "none", "echo ran"], { env });
    expect(result).toEqual({ code: 0, stdout: "ran\n", stderr: "" });
    const bin = join(home.env.XDG_STATE_HOME!, "sandboxes", "bin");
    expect(readdirSync(bin)).toEqual([expect.stringMatching(/^sandbox-start-sources-\d+-\d+$/)]);
  }, 60_000);

  test("under Bun it runs in-process", async () => {
    const script = join(prefix, "lib/node_modules/sandboxes/bin/sandboxes.js");
    expect(await run([bun, script, "--version"], { env: home.env })).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: "" });
  });

  test("without Bun it says how to get Bun or the standalone binary", async () => {
    const env = { ...home.env, PATH: pathWith(false) };
    const result = await run([installed, "--version"], { env });
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("sandboxes: this package runs on Bun, which was not found on PATH or in ~/.bun/bin.");
    expect(result.stderr).toContain("curl -fsSL https://bun.sh/install | bash");
  });
});

test("the package ships bin/, src/, package.json and sandbox-start as built (no binary, no test)", async () => {
  const result = await run(["npm", "pack", "--dry-run", "--json", "--ignore-scripts"], { env: { ...(process.env as Record<string, string>) } });
  const files = (JSON.parse(result.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  expect(files).toContain("bin/sandboxes.js");
  expect(files).toContain("src/main.ts");
  expect(files).toContain("package.json");
  expect(files.filter((f) => f.startsWith("test/"))).toEqual([]);
  // `npm run build` wrote this machine's; a release build, and `npm publish` first
  // (prepublishOnly), both CPUs'.
  const dist = files.filter((f) => f.startsWith("dist/"));
  expect(dist).toContain(`dist/sandbox-start-linux-${process.arch}`);
  expect(dist.filter((f) => !/^dist\/sandbox-start-linux-(x64|arm64)$/.test(f))).toEqual([]);
});
