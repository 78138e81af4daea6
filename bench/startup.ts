#!/usr/bin/env bun
/**
 * Start-up time of the compiled binary against the floor: a compiled Bun hello-world built in
 * the same run with the same flags. Target: each command within 2x the floor. No assertions;
 * prints one table (and `--json` for machines).
 *
 *   bun run build && bun run bench/startup.ts [--runs 40] [--binary dist/sandboxes] [--json]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { runs: { type: "string", default: "40" }, binary: { type: "string" }, json: { type: "boolean" } },
  strict: true,
});
const runs = Math.max(5, Number(values.runs));
const binary = resolve(values.binary ?? join(import.meta.dir, "..", "dist", "sandboxes"));

const work = mkdtempSync(join(tmpdir(), "sandboxes-startup-"));
try {
  writeFileSync(join(work, "hello.ts"), 'console.log("hello");\n');
  const build = Bun.spawnSync([process.execPath, "build", "--compile", "--minify", "--sourcemap=none", join(work, "hello.ts"), "--outfile", join(work, "hello")]);
  if (build.exitCode !== 0) throw new Error(`building the hello-world failed:\n${build.stderr}`);

  // A clean environment so no credentials or config change what `providers` does.
  const home = join(work, "home");
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local/state"), NO_COLOR: "1" };
  const cases: [string, string[]][] = [
    ["hello-world (floor)", [join(work, "hello")]],
    ["sandboxes --version", [binary, "--version"]],
    ["sandboxes --help", [binary, "--help"]],
    ["sandboxes providers", [binary, "providers"]],
  ];

  const measure = (argv: string[]): number[] => {
    const times: number[] = [];
    for (let i = 0; i < runs + 3; i++) {
      const started = Bun.nanoseconds();
      const proc = Bun.spawnSync(argv, { env, stdout: "ignore", stderr: "ignore" });
      const ms = (Bun.nanoseconds() - started) / 1e6;
      if (proc.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${proc.exitCode}`);
      if (i >= 3) times.push(ms); // the first runs warm the page cache
    }
    return times.sort((a, b) => a - b);
  };
  const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

  // Interleave rounds so machine load drifts affect every case alike.
  const samples = cases.map(() => [] as number[]);
  const rounds = 4;
  for (let round = 0; round < rounds; round++) {
    cases.forEach(([, argv], index) => samples[index]!.push(...measure(argv).slice(0, Math.ceil(runs / rounds))));
  }
  const results = cases.map(([name], index) => {
    const sorted = samples[index]!.sort((a, b) => a - b);
    return { name, median_ms: pct(sorted, 50), p90_ms: pct(sorted, 90), min_ms: sorted[0]! };
  });
  const floor = results[0]!.median_ms;
  const rows = results.map((r) => ({ ...r, ratio: r.median_ms / floor }));

  if (values.json) {
    process.stdout.write(`${JSON.stringify({ runs, binary, target_ratio: 2, results: rows }, null, 2)}\n`);
  } else {
    process.stdout.write(`start-up, ${runs} runs each after warm-up (${binary})\n\n`);
    process.stdout.write(`${"case".padEnd(22)} ${"median".padStart(9)} ${"p90".padStart(9)} ${"min".padStart(9)}  vs floor\n`);
    for (const r of rows) {
      const flag = r.ratio <= 2 ? "" : "  (over the 2x target)";
      process.stdout.write(`${r.name.padEnd(22)} ${r.median_ms.toFixed(1).padStart(7)}ms ${r.p90_ms.toFixed(1).padStart(7)}ms ${r.min_ms.toFixed(1).padStart(7)}ms  ${r.ratio.toFixed(2)}x${flag}\n`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
