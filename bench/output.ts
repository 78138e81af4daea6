/**
 * Peak memory (VmHWM of the sandboxes process, from /proc) while a sandboxed program writes
 * 1 GiB: with `--json` (captured, capped at --max-output: 16 MiB per stream by default) and
 * streamed to /dev/null (never capped, backpressure through the pipe: straight from the program
 * on a one-shot run, through sandboxes with --name); and `cp` of a file that size out of a kept
 * sandbox and back in (streamed both ways, never held). Printed next to the cap and next to the same process
 * running `true`, measured in this run. No assertions.
 *
 *   bun bench/output.ts            (OUTPUT_BYTES=… to change the 1 GiB)
 */
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const BINARY = resolve(import.meta.dir, "..", "dist", "sandboxes");
const BYTES = Number(process.env.OUTPUT_BYTES ?? 1024 ** 3);
const MiB = 1024 * 1024;
const home = mkdtempSync(join(tmpdir(), "sandboxes-bench-output-"));
for (const dir of [".config", ".local/state"]) mkdirSync(join(home, dir), { recursive: true });
const env = { HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local/state"), PATH: process.env.PATH ?? "/usr/bin:/bin", NO_COLOR: "1", DOCKER_HOST: "unix:///nonexistent/docker.sock" };

async function peak(args: string[]): Promise<{ mib: number; seconds: number; code: number }> {
  const started = performance.now();
  const child = Bun.spawn([BINARY, ...args], { env, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  let hwm = 0;
  let running = true;
  const poll = (async () => {
    while (running) {
      const status = await Bun.file(`/proc/${child.pid}/status`).text().catch(() => "");
      hwm = Math.max(hwm, Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024);
      await Bun.sleep(10);
    }
  })();
  const code = await child.exited;
  running = false;
  await poll;
  hwm = Math.max(hwm, child.resourceUsage()?.maxRSS ?? 0);
  return { mib: hwm / MiB, seconds: (performance.now() - started) / 1000, code };
}

const program = `head -c ${BYTES} /dev/zero | tr '\\0' y`;
try {
  const idle = await peak(["run", "--json", "true"]);
  const rows: Array<[string, Awaited<ReturnType<typeof peak>>, string]> = [
    ["run true (baseline)", idle, "-"],
    ["run --json (default cap)", await peak(["run", "--json", program]), "16 MiB/stream"],
    ["run --json --max-output 64m", await peak(["run", "--json", "--max-output", "64m", program]), "64 MiB/stream"],
    ["run (streamed to /dev/null)", await peak(["run", program]), "none"],
    // --name leaves the one-shot path: the output passes through sandboxes, awaited chunk by chunk.
    ["run --name (through sandboxes)", await peak(["run", "--name", `bench-${process.pid}`, program]), "none"],
  ];
  // cp streams the sandbox's tar to disk: its memory should not grow with the file.
  const kept = `bench-cp-${process.pid}`;
  await peak(["run", "--keep", "-n", kept, `${program} > /tmp/out.bin`]);
  rows.push(["cp out of a sandbox (to disk)", await peak(["cp", `${kept}:/tmp/out.bin`, join(home, "out.bin")]), "none"]);
  rows.push(["cp into a sandbox (streamed)", await peak(["cp", join(home, "out.bin"), `${kept}:/tmp/in.bin`]), "none"]);
  await peak(["destroy", kept]);
  console.log(`${(BYTES / MiB).toFixed(0)} MiB of output through dist/sandboxes (local provider)\n`);
  console.log(["case".padEnd(30), "cap".padEnd(14), "peak VmHWM".padStart(11), "over baseline".padStart(14), "seconds".padStart(8)].join("  "));
  for (const [name, result, cap] of rows) {
    console.log([name.padEnd(30), cap.padEnd(14), `${result.mib.toFixed(0)} MiB`.padStart(11), `${(result.mib - idle.mib).toFixed(0)} MiB`.padStart(14), result.seconds.toFixed(1).padStart(8)].join("  "));
  }
} finally {
  rmSync(home, { recursive: true, force: true });
}
