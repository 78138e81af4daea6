#!/usr/bin/env bun
/**
 * Start-up time against the floor: a Bun hello-world compiled in the same run with the same
 * flags as the release binaries. Measures the release build of src/main.ts (built here too) and,
 * if present, dist/sandboxes from `bun run build`. Target: within 2x the floor. No assertions.
 *
 *   bun run bench/startup.ts [--runs 40] [--json]
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { compileEntry, compileHostBinary } from "../scripts/build-binaries";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { runs: { type: "string", default: "40" }, json: { type: "boolean" } },
  strict: true,
});
const runs = Math.max(8, Number(values.runs));
const ROOT = resolve(import.meta.dir, "..");

const work = mkdtempSync(join(tmpdir(), "sandboxes-startup-"));
try {
  writeFileSync(join(work, "hello.ts"), 'console.log("hello");\n');
  await compileEntry(join(work, "hello.ts"), join(work, "hello"));
  await compileHostBinary(join(work, "sandboxes"));

  // A clean environment so no credentials or config change what `providers` does.
  const home = join(work, "home");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local/state"), NO_COLOR: "1" };
  const commands = [["--version"], ["--help"], ["providers"]];
  const binaries: [string, string][] = [["release", join(work, "sandboxes")]];
  const dev = join(ROOT, "dist/sandboxes");
  if (existsSync(dev)) binaries.push(["dist", dev]);
  const cases: [string, string[]][] = [
    ["hello-world (floor)", [join(work, "hello")]],
    ...binaries.flatMap(([label, path]) => commands.map((args): [string, string[]] => [`${label}: ${args.join(" ")}`, [path, ...args]])),
  ];

  const once = (argv: string[]): number => {
    const started = Bun.nanoseconds();
    const proc = Bun.spawnSync(argv, { env, stdout: "ignore", stderr: "ignore" });
    if (proc.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${proc.exitCode}`);
    return (Bun.nanoseconds() - started) / 1e6;
  };
  for (const [, argv] of cases) for (let i = 0; i < 3; i++) once(argv); // warm the page cache
  // Round-robin so drifts in machine load hit every case alike.
  const samples = cases.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) cases.forEach(([, argv], index) => samples[index]!.push(once(argv)));

  const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
  const results = cases.map(([name], index) => {
    const sorted = samples[index]!.sort((a, b) => a - b);
    return { name, median_ms: pct(sorted, 50), p90_ms: pct(sorted, 90), min_ms: sorted[0]! };
  });
  // Medians for the verdict; the ratio of minimums is the better guide on a busy shared machine.
  const floor = results[0]!;
  const rows = results.map((r) => ({ ...r, ratio: r.median_ms / floor.median_ms, min_ratio: r.min_ms / floor.min_ms }));

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ runs, target_ratio: 2, results: rows }, null, 2)}\n`);
  } else {
    process.stdout.write(`start-up: ${runs} runs each, round-robin, after warm-up\n\n`);
    process.stdout.write(`${"case".padEnd(24)} ${"median".padStart(9)} ${"p90".padStart(9)} ${"min".padStart(9)}  vs floor (median, min)\n`);
    for (const r of rows) {
      const flag = r.ratio <= 2 ? "" : "  (over the 2x target)";
      process.stdout.write(`${r.name.padEnd(24)} ${r.median_ms.toFixed(1).padStart(7)}ms ${r.p90_ms.toFixed(1).padStart(7)}ms ${r.min_ms.toFixed(1).padStart(7)}ms  ${r.ratio.toFixed(2)}x  ${r.min_ratio.toFixed(2)}x${flag}\n`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
