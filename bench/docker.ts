/**
 * `sandboxes run -p docker --image I true` against `docker run --rm I true`: same image, same
 * engine, interleaved runs, medians printed with their ratio (target: <= 0.8). No assertions.
 *
 *   bun run build && bun bench/docker.ts [--image sandboxes-test/busybox] [--runs 15] [--docker /usr/local/bin/docker]
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    image: { type: "string", default: "sandboxes-test/busybox" },
    runs: { type: "string", default: "15" },
    docker: { type: "string", default: Bun.which("docker") ?? "docker" },
    binary: { type: "string", default: resolve(import.meta.dir, "..", "dist", "sandboxes") },
  },
});
const runs = Number(values.runs);
const home = mkdtempSync(join(tmpdir(), "sandboxes-bench-docker-"));
const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, "config"), XDG_STATE_HOME: join(home, "state"), NO_COLOR: "1" };

const contenders = {
  sandboxes: [values.binary!, "run", "-p", "docker", "--image", values.image!, "true"],
  "docker CLI": [values.docker!, "run", "--rm", values.image!, "true"],
};

/** Containers from this image, as the engine sees them (our own removal may still be finishing). */
async function containersOfImage(): Promise<number> {
  const filters = encodeURIComponent(JSON.stringify({ ancestor: [values.image!] }));
  const response = await fetch(`http://docker/containers/json?all=true&filters=${filters}`, { unix: "/var/run/docker.sock" } as RequestInit);
  return ((await response.json()) as unknown[]).length;
}

async function timeOnce(argv: string[]): Promise<number> {
  const started = performance.now();
  const child = Bun.spawn(argv, { env, stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  const elapsed = performance.now() - started;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${stderr.trim()}`);
  // Untimed: let the engine finish removing what this run left (sandboxes hands that to the
  // engine), so it does not slow the next contender's run.
  while ((await containersOfImage()) > 0) await Bun.sleep(10);
  return elapsed;
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(contenders).map((name) => [name, []]));
// One warm-up each (page cache, engine caches), then alternate so load drifts hit both alike.
for (const argv of Object.values(contenders)) await timeOnce(argv);
for (let i = 0; i < runs; i++) {
  for (const [name, argv] of i % 2 ? Object.entries(contenders).reverse() : Object.entries(contenders)) samples[name]!.push(await timeOnce(argv));
}

console.log(`image ${values.image}, ${runs} runs each (interleaved; each waits, untimed, until the engine has removed the previous run's container), wall time of the whole command`);
for (const [name, xs] of Object.entries(samples)) {
  console.log(`${name.padEnd(12)} median ${median(xs).toFixed(0).padStart(5)} ms   min ${Math.min(...xs).toFixed(0).padStart(5)} ms   max ${Math.max(...xs).toFixed(0).padStart(5)} ms`);
}
const ratio = median(samples.sandboxes!) / median(samples["docker CLI"]!);
console.log(`ratio sandboxes / docker run --rm: ${ratio.toFixed(2)} (target <= 0.80)`);
