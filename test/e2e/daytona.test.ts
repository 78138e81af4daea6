/**
 * The compiled binary against the local Daytona fake: the real @daytonaio/sdk inside the binary
 * (with its form-data/busboy shim) speaks the real wire protocol to 127.0.0.1.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeDaytona } from "../fakes/daytona/server";
import { buildBinary, sandboxes, tempHome } from "./_daytona-helpers";
import { peakMemory } from "../helpers";

const fake = new FakeDaytona({ apiKey: "dummy", pageSize: 2 });
const home = tempHome();
// A directory under the sandbox's own /tmp (the fake mounts one per sandbox).
const remote = `/tmp/sandboxes-e2e-daytona-${process.pid}`;
let env: Record<string, string>;

beforeAll(async () => {
  await buildBinary();
  fake.start();
  env = { ...home.env, DAYTONA_API_KEY: "dummy", DAYTONA_API_URL: fake.apiUrl };
}, 120_000);

afterEach(() => {
  fake.clearFaults();
  fake.reset();
});

/** `run --keep --json`: the id and the program's output, from the one JSON document. */
async function keep(args: string[], extraEnv: Record<string, string> = {}) {
  const result = await sandboxes(["run", "-p", "daytona", "--keep", "--json", ...args], { ...env, ...extraEnv });
  expect(result.stderr).toBe("");
  const doc = JSON.parse(result.stdout) as { sandbox_id: string; stdout: string; stderr: string; exit_code: number; reused?: boolean };
  return { ...doc, id: doc.sandbox_id };
}

afterAll(async () => {
  await fake.stop();
  home.cleanup();
  rmSync(remote, { recursive: true, force: true });
});

describe("daytona through the compiled binary", () => {
  test("run: stdout and stderr apart, the exit code passed through, the sandbox destroyed", async () => {
    const result = await sandboxes(["run", "-p", "daytona", "echo to-out; echo to-err >&2; exit 7"], env);
    expect(result.stdout).toBe("to-out\n");
    expect(result.stderr).toBe("to-err\n");
    expect(result.code).toBe(7);
    expect(fake.live()).toHaveLength(0);
  }, 30_000);

  test("run --timeout: the command is killed, exit 124, nothing left behind", async () => {
    const result = await sandboxes(["run", "-p", "daytona", "-t", "1", "echo started; sleep 30; echo never"], env);
    expect(result.code).toBe(124);
    expect(result.stdout).toBe("started\n");
    expect(fake.live()).toHaveLength(0);
  }, 30_000);

  test("run --file: the program is uploaded and run (env and args reach it)", async () => {
    const script = join(home.home, "hello.sh");
    writeFileSync(script, 'echo "hello $WHO from $0 with $1"\n');
    const result = await sandboxes(["run", "-p", "daytona", "--file", script, "-e", "WHO=daytona", "--", "first-arg"], env);
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(/^hello daytona from .*hello\.sh with first-arg\n$/);
    expect(result.code).toBe(0);
    expect(fake.live()).toHaveLength(0);
  }, 30_000);

  test("--keep, then exec by id, list with labels, cp both ways, destroy: each from a new process", async () => {
    const kept = await keep(["-l", "team=e2e", "-l", "purpose=keep", "-e", "FROM_RUN=yes", "echo created"]);
    expect(kept.exit_code).toBe(0);
    expect(kept.stdout).toBe("created\n");
    const id = kept.id;
    expect(fake.live().map((s) => s.id)).toEqual([id]);

    const exec = await sandboxes(["exec", id, 'echo "exec saw $FROM_RUN"; echo oops >&2; exit 3'], env);
    expect(exec).toEqual({ code: 3, stdout: "exec saw yes\n", stderr: "oops\n" });

    expect((await sandboxes(["exec", id, "kill -9 $$"], env)).code).toBe(137);
    expect((await sandboxes(["exec", id, "-t", "1", "sleep 30"], env)).code).toBe(124);
    const workdir = await sandboxes(["exec", id, "-w", "/tmp", "-e", "GREETING=hi there", "--", "sh", "-c", 'echo "$GREETING in $(pwd)"'], env);
    expect(workdir.stdout).toBe("hi there in /tmp\n");
    const piped = await sandboxes(["exec", id, "tr a-z A-Z"], env, { stdin: "through stdin\n" });
    expect(piped.stdout).toBe("THROUGH STDIN\n");

    const listed = await sandboxes(["list", "-p", "daytona", "-l", "team=e2e", "--json"], env);
    expect(listed.code).toBe(0);
    const doc = JSON.parse(listed.stdout);
    expect(doc.sandboxes).toHaveLength(1);
    expect(doc.sandboxes[0]).toMatchObject({ id, provider: "daytona", state: "running", labels: { team: "e2e", purpose: "keep" } });
    const other = await sandboxes(["list", "-p", "daytona", "-l", "team=nobody"], env);
    expect(other.code).toBe(0);
    expect(other.stdout).toBe("");
    const table = await sandboxes(["list", "-p", "daytona"], env);
    expect(table.stdout.split("\n")[0]).toBe("ID\tPROVIDER\tNAME\tSTATE\tLABELS\tAGE");
    expect(table.stdout).toContain(`${id}\tdaytona\t-\trunning\t`);

    // Binary data both ways, byte for byte (bytes that are not valid UTF-8 included).
    const blob = new Uint8Array(200_000).map((_, i) => (i * 7919 + (i >> 8)) % 256);
    const local = join(home.home, "blob.bin");
    writeFileSync(local, blob);
    expect((await sandboxes(["exec", id, `mkdir -p ${remote}/in`], env)).code).toBe(0);
    const up = await sandboxes(["cp", local, `${id}:${remote}/in/`], env);
    expect(up.code).toBe(0);
    const sum = await sandboxes(["exec", id, `wc -c < ${remote}/in/blob.bin`], env);
    expect(sum.stdout.trim()).toBe("200000");
    const back = join(home.home, "back.bin");
    const down = await sandboxes(["cp", `${id}:${remote}/in/blob.bin`, back], env);
    expect(down.code).toBe(0);
    expect(new Uint8Array(readFileSync(back))).toEqual(blob);
    // Staged tars and stdin files were removed from the sandbox again.
    for (const upload of fake.uploads) expect(existsSync(upload.path) && upload.path.includes(".sandboxes-")).toBe(false);

    const destroyed = await sandboxes(["destroy", id], env);
    expect(destroyed.code).toBe(0);
    expect(fake.live()).toHaveLength(0);
    const gone = await sandboxes(["exec", id, "true"], env);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain(id);
  }, 30_000);

  test("--reuse finds the sandbox another process kept, by its labels (server-side)", async () => {
    const first = await keep(["--reuse", "-l", "pool=reuse", "echo one > reuse-marker; echo first"]);
    expect(first).toMatchObject({ exit_code: 0, stdout: "first\n", reused: false });
    const id = first.id;
    const second = await sandboxes(["run", "-p", "daytona", "--reuse", "-l", "pool=reuse", "cat reuse-marker"], env);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe("one\n");
    const third = await sandboxes(["run", "-p", "daytona", "--reuse", "--json", "-l", "pool=reuse", "true"], env);
    expect(JSON.parse(third.stdout)).toMatchObject({ sandbox_id: id, reused: true });
    expect(fake.live().map((s) => s.id)).toEqual([id]);
    expect(fake.requests.some((r) => r === "GET /api/sandbox")).toBe(true);
    await sandboxes(["destroy", id], env);
    expect(fake.live()).toHaveLength(0);
  }, 30_000);

  test("list reads every page", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await keep(["-l", "pages=yes", "true"])).id);
    }
    const listed = await sandboxes(["list", "-p", "daytona", "-l", "pages=yes", "--json"], env);
    expect(JSON.parse(listed.stdout).sandboxes.map((s: { id: string }) => s.id).sort()).toEqual([...ids].sort());
    const destroyed = await sandboxes(["destroy", "--all", "--yes", "-p", "daytona", "-l", "pages=yes"], env);
    expect(destroyed.code).toBe(0);
    expect(fake.live()).toHaveLength(0);
  }, 30_000);

  test("--image: a registry image is built, a bare name is a snapshot; --ttl sets the lifetime", async () => {
    const fromImage = await keep(["--image", "python:3.12-slim", "--ttl", "90", "--cpus", "2", "--memory", "1536m", "--network", "none", "true"]);
    const imageBox = fake.sandboxes.get(fromImage.id)!;
    expect(imageBox.buildInfo?.dockerfileContent).toContain("FROM python:3.12-slim");
    expect(imageBox.settings).toMatchObject({ autoStopInterval: 2, autoDeleteInterval: 0, ttlMinutes: 2, cpu: 2, memory: 2, networkBlockAll: true });
    const snapshotWithCpus = await sandboxes(["run", "-p", "daytona", "--image", "my-snapshot", "--cpus", "2", "true"], env);
    expect(snapshotWithCpus.code).toBe(125);
    expect(snapshotWithCpus.stderr).toBe("sandboxes: daytona takes --cpus/--memory only with a registry image: the snapshot fixes them\n");
    const fromSnapshot = await keep(["--image", "my-snapshot", "true"]);
    expect(fake.sandboxes.get(fromSnapshot.id)!.snapshot).toBe("my-snapshot");
    await sandboxes(["destroy", imageBox.id, fromSnapshot.id], env);
    expect(fake.live()).toHaveLength(0);
  }, 30_000);
});

describe("daytona faults through the compiled binary", () => {
  test("503s on the bulk upload are retried: cp still works", async () => {
    const { id } = await keep(["true"]);
    fake.inject({ match: `POST /toolbox/${id}/files/bulk-upload`, status: 503, times: 2 });
    const file = join(home.home, "fault.txt");
    writeFileSync(file, "uploaded despite faults\n");
    expect((await sandboxes(["exec", id, `mkdir -p ${remote}/fault`], env)).code).toBe(0);
    expect((await sandboxes(["cp", file, `${id}:${remote}/fault/`], env)).code).toBe(0);
    expect((await sandboxes(["exec", id, `cat ${remote}/fault/fault.txt`], env)).stdout).toBe("uploaded despite faults\n");
    expect(fake.requests.filter((r) => r === `POST /toolbox/${id}/files/bulk-upload`).length).toBe(3);
    await sandboxes(["destroy", id], env);
    expect(fake.live()).toHaveLength(0);
  }, 30_000);

  test("cp into a sandbox through the streamed upload: 100 MiB arrive byte for byte, the CLI's memory far below that", async () => {
    const { id } = await keep(["true"]);
    const file = join(home.home, "big.bin");
    Bun.spawnSync(["sh", "-c", 'head -c 100M /dev/urandom > "$1"', "sh", file]);
    const small = join(home.home, "small.bin");
    writeFileSync(small, "x");
    // The same copy of one byte: the process's own size with the SDK loaded.
    const idle = await peakMemory(["cp", small, `${id}:${remote}/small.bin`], env);
    const copied = await peakMemory(["cp", file, `${id}:${remote}/big.bin`], env);
    expect([idle.code, copied.code]).toEqual([0, 0]);
    // The SDK's streamed upload reads the archive as it sends it (its pace against a slow receiver
    // is tested in test/providers/daytona.test.ts).
    expect(copied.peakBytes).toBeLessThan(idle.peakBytes + 64 * 1024 * 1024);
    const inside = await sandboxes(["exec", id, `sha256sum < ${remote}/big.bin`], env);
    expect(inside.stdout.split(" ")[0]).toBe(new Bun.CryptoHasher("sha256").update(readFileSync(file)).digest("hex"));
    rmSync(file);
    await sandboxes(["destroy", id], env);
  }, 120_000);
});
