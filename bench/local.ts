#!/usr/bin/env bun
/**
 * The local provider against its floors, measured in the same run (issue 10, part 4):
 *  (a) `sandboxes run -p local true` (default network policy: the egress proxy and its listener in
 *      the sandbox included; as root made from the host, else by sandbox-start and handed over) against
 *      the sum of a compiled Bun hello-world and a bare `bwrap … true`; target <= 2x, stretch 1.5x.
 *      Run as root, it measures the same again as an ordinary user (uid 65534, Bun.spawn's uid):
 *      most people run sandboxes as one, and their sandboxes start another way (isolation.ts);
 *  (b) 1 GiB of stdout from a local run into a pipe (`cat > /dev/null`, `wc -c`) against the same
 *      command under bare bwrap; target >= 0.9x. Pipe throughput on a VM moves ±20% from one run
 *      to the next whatever runs it, so the two sides alternate, --reps times each (and exec in
 *      a kept sandbox beside them): each of our runs is compared with the bare run just before it,
 *      and the ratio is the median of those (the ratio of the two medians is printed too: a slow
 *      minute weighs on it when it falls on more runs of one side). A one-shot `run` hands the program our stdout, so
 *      what it adds is its start-up and clean-up; the ratio is also printed with each side's own
 *      `true` subtracted, and for `exec` into a kept sandbox, whose output passes through
 *      sandboxes (as for `run --file`, --name or --keep).
 * (a) also measures `run -p local true` with the util-linux mechanism (SANDBOXES_LOCAL_ISOLATION=
 * unshare), against the same floors, and `exec true` into a kept sandbox. Needs dist/sandboxes (`npm run build`) and bubblewrap. No
 * assertions.
 *
 *   bun run bench/local.ts [--runs 20] [--gib 1] [--reps 7] [--json]
 */
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { compileEntry } from "../scripts/build-binaries";

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { runs: { type: "string", default: "20" }, gib: { type: "string", default: "1" }, reps: { type: "string", default: "7" }, json: { type: "boolean" } },
  strict: true,
});
const runs = Math.max(5, Number(values.runs));
const reps = Math.max(3, Number(values.reps));
const bytes = Math.round(Number(values.gib) * 1024 ** 3);
const ROOT = resolve(import.meta.dir, "..");
const binary = join(ROOT, "dist/sandboxes");
const bwrap = Bun.which("bwrap");
if (!existsSync(binary) || !bwrap) {
  console.log(`local.ts not run: ${!bwrap ? "bubblewrap is not installed" : "dist/sandboxes is missing (npm run build)"}`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), "sandboxes-bench-local-"));
try {
  writeFileSync(join(work, "hello.ts"), 'console.log("hello");\n');
  await compileEntry(join(work, "hello.ts"), join(work, "hello"));
  const home = join(work, "home");
  mkdirSync(home);
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local/state"), NO_COLOR: "1", DOCKER_HOST: "unix:///nonexistent" };
  // The bare floor: the same kinds of namespaces and a minimal root, nothing of ours.
  const bare = [bwrap, "--die-with-parent", "--unshare-all", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "--"];

  type As = { env: Record<string, string>; uid?: number; gid?: number };
  const caller: As = { env };
  const timed = (argv: string[], as: As = caller, extra: Record<string, string> = {}): number => {
    const started = Bun.nanoseconds();
    const proc = Bun.spawnSync(argv, { env: { ...as.env, ...extra }, stdout: "ignore", stderr: "ignore", ...(as.uid !== undefined ? { uid: as.uid, gid: as.gid } : {}) });
    if (proc.exitCode !== 0) throw new Error(`${argv.join(" ")} exited ${proc.exitCode}`);
    return (Bun.nanoseconds() - started) / 1e6;
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const min = (xs: number[]) => Math.min(...xs);

  // (a) start-up, round-robin so load drifts hit every case alike.
  const cases: Array<[string, string[], Record<string, string>?]> = [
    ["hello-world", [join(work, "hello")]],
    ["bare bwrap true", [...bare, "true"]],
    ["run -p local true", [binary, "run", "-p", "local", "true"]],
    // What the default network policy (egress proxy, its listener or bridge) adds, measured beside it.
    ["run -p local --network none true", [binary, "run", "-p", "local", "--network", "none", "true"]],
    // The other mechanism, where bubblewrap is not installed (sandbox-start makes the sandbox).
    ["run -p local true, util-linux", [binary, "run", "-p", "local", "true"], { SANDBOXES_LOCAL_ISOLATION: "unshare" }],
  ];
  const startup = (as: As) => {
    // A command entered into a kept sandbox (exec, as an agent's tools do): not in the ratio.
    timed([binary, "run", "-p", "local", "--keep", "-n", "bench-exec", "true"], as);
    const all: typeof cases = [...cases, ["exec true in a kept sandbox", [binary, "exec", "bench-exec", "true"]]];
    try {
      for (const [, argv, extra] of all) for (let i = 0; i < 3; i++) timed(argv, as, extra);
      const samples = all.map(() => [] as number[]);
      for (let i = 0; i < runs; i++) all.forEach(([, argv, extra], index) => samples[index]!.push(timed(argv, as, extra)));
      const [hello, bareTrue, ours, noNetwork, utilLinux, exec] = samples.map((s) => ({ median: median(s), min: min(s) }));
      return { hello: hello!, bareTrue: bareTrue!, ours: ours!, noNetwork: noNetwork!, utilLinux: utilLinux!, exec: exec! };
    } finally {
      timed([binary, "destroy", "bench-exec"], as);
    }
  };
  const { hello, bareTrue, ours, noNetwork, utilLinux, exec } = startup(caller);
  // As root, the same as an ordinary user, in a home of its own.
  let ordinary: ReturnType<typeof startup> | undefined;
  if (process.getuid?.() === 0) {
    chmodSync(work, 0o755);
    const ordinaryHome = join(work, "home-ordinary");
    mkdirSync(ordinaryHome);
    chownSync(ordinaryHome, 65534, 65534);
    const ordinaryEnv = { ...env, HOME: ordinaryHome, XDG_CONFIG_HOME: join(ordinaryHome, ".config"), XDG_STATE_HOME: join(ordinaryHome, ".local/state") };
    ordinary = startup({ env: ordinaryEnv, uid: 65534, gid: 65534 });
  }
  // The README's main job, `run --file`, for the record (not part of the ratio): two one-shot
  // runs (the runtime asked for, then the program, which starts with the file in /tmp).
  writeFileSync(join(work, "main.sh"), "echo hi\n");
  const fileRun = [binary, "run", "-p", "local", "--file", join(work, "main.sh")];
  timed(fileRun);
  const fileSamples = Array.from({ length: Math.max(5, Math.round(runs / 3)) }, () => timed(fileRun));
  const runFile = { median: median(fileSamples), min: min(fileSamples) };
  const floorMedian = hello.median + bareTrue.median;
  const floorMin = hello.min + bareTrue.min;

  // (b) throughput of 1 GiB of stdout into a pipe.
  const producer = `head -c ${bytes} /dev/zero`;
  const sinks: Array<[string, string]> = [["cat > /dev/null", "cat > /dev/null"], ["wc -c", "wc -c > /dev/null"]];
  const quote = (argv: string[]) => argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const kept = Bun.spawnSync([binary, "run", "-p", "local", "--keep", "true"], { env, stderr: "pipe" });
  const keptId = /kept sandbox (\S+)/.exec(kept.stderr.toString())?.[1];
  if (!keptId) throw new Error(`run --keep failed: ${kept.stderr.toString()}`);
  const mib = bytes / 1024 ** 2;
  const throughput: Array<{ sink: string; bare_mib_s: number; ours_mib_s: number; ratio: number; ratio_of_medians: number; ratio_without_startup: number; exec_mib_s: number; exec_ratio: number }> = [];
  try {
    for (const [label, sink] of sinks) {
      const bareRuns: number[] = [];
      const ourRuns: number[] = [];
      const execRuns: number[] = [];
      for (let i = 0; i < reps; i++) {
        bareRuns.push(timed(["sh", "-c", `${quote([...bare, "sh", "-c", producer])} | ${sink}`]));
        ourRuns.push(timed(["sh", "-c", `${quote([binary, "run", "-p", "local", producer])} | ${sink}`]));
        execRuns.push(timed(["sh", "-c", `${quote([binary, "exec", keptId, producer])} | ${sink}`]));
      }
      const bareRate = mib / (median(bareRuns) / 1000);
      const ourRate = mib / (median(ourRuns) / 1000);
      const execRate = mib / (median(execRuns) / 1000);
      // The same runs less what `true` costs each side (measured in (a)): the copying alone.
      const steadyRatio = (median(bareRuns) - bareTrue.median) / (median(ourRuns) - ours.median);
      // Each of our runs against the bare run just before it: a slow minute of the VM slows both.
      const pairedRatio = median(bareRuns.map((bareMs, i) => bareMs / ourRuns[i]!));
      throughput.push({ sink: label, bare_mib_s: bareRate, ours_mib_s: ourRate, ratio: pairedRatio, ratio_of_medians: ourRate / bareRate, ratio_without_startup: steadyRatio, exec_mib_s: execRate, exec_ratio: execRate / bareRate });
    }
  } finally {
    Bun.spawnSync([binary, "destroy", keptId], { env, stdout: "ignore", stderr: "ignore" });
  }

  const result = {
    runs,
    startup: {
      hello_ms: hello,
      bare_bwrap_ms: bareTrue,
      run_true_ms: ours,
      run_true_network_none_ms: noNetwork,
      run_true_util_linux_ms: utilLinux,
      exec_true_ms: exec,
      run_file_ms: runFile,
      ratio_median: ours.median / floorMedian,
      ratio_min: ours.min / floorMin,
      util_linux_ratio_median: utilLinux.median / floorMedian,
      target: 2,
      stretch: 1.5,
      ...(ordinary
        ? {
            ordinary_user: {
              hello_ms: ordinary.hello,
              bare_bwrap_ms: ordinary.bareTrue,
              run_true_ms: ordinary.ours,
              run_true_network_none_ms: ordinary.noNetwork,
              run_true_util_linux_ms: ordinary.utilLinux,
              exec_true_ms: ordinary.exec,
              ratio_median: ordinary.ours.median / (ordinary.hello.median + ordinary.bareTrue.median),
              ratio_min: ordinary.ours.min / (ordinary.hello.min + ordinary.bareTrue.min),
              util_linux_ratio_median: ordinary.utilLinux.median / (ordinary.hello.median + ordinary.bareTrue.median),
            },
          }
        : {}),
    },
    stdout: { bytes, reps, results: throughput, target: 0.9 },
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const ms = (x: { median: number; min: number }) => `${x.median.toFixed(1)} ms median, ${x.min.toFixed(1)} ms min`;
    process.stdout.write(`local provider: ${runs} runs each, round-robin, after warm-up\n\n`);
    process.stdout.write(`hello-world (floor)       ${ms(hello)}\n`);
    process.stdout.write(`bare bwrap true (floor)   ${ms(bareTrue)}\n`);
    process.stdout.write(`run -p local true         ${ms(ours)}\n`);
    process.stdout.write(`  vs the sum of the floors: ${result.startup.ratio_median.toFixed(2)}x median, ${result.startup.ratio_min.toFixed(2)}x min (target 2x, stretch 1.5x)\n`);
    process.stdout.write(`  of which the default network policy: ${(ours.median - noNetwork.median).toFixed(1)} ms median (--network none: ${ms(noNetwork)})\n`);
    process.stdout.write(`  with util-linux (no bubblewrap): ${ms(utilLinux)}, ${result.startup.util_linux_ratio_median.toFixed(2)}x the same floors\n`);
    process.stdout.write(`exec true in a kept sandbox ${ms(exec)} (not in the ratio)\n`);
    process.stdout.write(`run -p local --file main.sh ${ms(runFile)} (the main job; not in the ratio)\n\n`);
    if (ordinary && result.startup.ordinary_user) {
      process.stdout.write(`as an ordinary user (uid 65534), ${runs} runs each\n`);
      process.stdout.write(`hello-world (floor)       ${ms(ordinary.hello)}\n`);
      process.stdout.write(`bare bwrap true (floor)   ${ms(ordinary.bareTrue)}\n`);
      process.stdout.write(`run -p local true         ${ms(ordinary.ours)}\n`);
      process.stdout.write(`  vs the sum of the floors: ${result.startup.ordinary_user.ratio_median.toFixed(2)}x median, ${result.startup.ordinary_user.ratio_min.toFixed(2)}x min (target 2x, stretch 1.5x)\n`);
      process.stdout.write(`  of which the default network policy: ${(ordinary.ours.median - ordinary.noNetwork.median).toFixed(1)} ms median (--network none: ${ms(ordinary.noNetwork)})\n`);
      process.stdout.write(`  with util-linux (no bubblewrap): ${ms(ordinary.utilLinux)}, ${result.startup.ordinary_user.util_linux_ratio_median.toFixed(2)}x the same floors\n`);
      process.stdout.write(`exec true in a kept sandbox ${ms(ordinary.exec)} (not in the ratio)\n\n`);
    }
    process.stdout.write(`${(bytes / 1024 ** 3).toFixed(2)} GiB of stdout into a pipe (${reps} alternating runs each)\n`);
    for (const t of throughput) {
      process.stdout.write(`  ${t.sink.padEnd(16)} bare bwrap ${t.bare_mib_s.toFixed(0)} MiB/s, run -p local ${t.ours_mib_s.toFixed(0)} MiB/s: ${t.ratio.toFixed(2)}x (target 0.9x; the median of each run against the bare one before it)\n`);
      process.stdout.write(`  ${"".padEnd(16)} the ratio of the two medians: ${t.ratio_of_medians.toFixed(2)}x\n`);
      process.stdout.write(`  ${"".padEnd(16)} without each side's start-up (its \`true\`): ${t.ratio_without_startup.toFixed(2)}x\n`);
      process.stdout.write(`  ${"".padEnd(16)} exec in a kept sandbox (through sandboxes) ${t.exec_mib_s.toFixed(0)} MiB/s: ${t.exec_ratio.toFixed(2)}x\n`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
