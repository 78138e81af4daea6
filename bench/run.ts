/**
 * Every benchmark, one after the other: start-up against a compiled Bun hello-world, the local
 * provider against a compiled hello-world plus a bare bwrap (and its stdout against bare bwrap's),
 * peak memory of 1 GiB of output (--json and streamed) next to the cap, and `run -p docker`
 * against `docker run --rm` (skipped, saying why, when no engine answers).
 * Each prints its own ratios against a baseline measured in the same run. No assertions.
 *
 *   npm run bench
 */
import { resolve } from "node:path";

const dir = import.meta.dir;

async function bench(script: string): Promise<number> {
  console.log(`\n== ${script}`);
  const child = Bun.spawn(["bun", resolve(dir, script)], { stdout: "inherit", stderr: "inherit" });
  return child.exited;
}

async function engineAnswers(): Promise<boolean> {
  try {
    const response = await fetch("http://docker/_ping", { unix: "/var/run/docker.sock" } as RequestInit);
    return response.ok;
  } catch {
    return false;
  }
}

let failed = 0;
failed += (await bench("startup.ts")) === 0 ? 0 : 1;
failed += (await bench("output.ts")) === 0 ? 0 : 1;
failed += (await bench("local.ts")) === 0 ? 0 : 1;
if (await engineAnswers()) failed += (await bench("docker.ts")) === 0 ? 0 : 1;
else console.log("\n== docker.ts not run: no Docker Engine at /var/run/docker.sock (scripts/ci/docker.sh starts one)");
process.exit(failed ? 1 : 0);
