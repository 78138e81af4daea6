/**
 * The docker provider through the compiled binary against a real engine (scripts/ci/docker.sh
 * installs and starts it and builds the offline images). What exists afterwards is checked
 * through the Engine API directly, never through the binary under test. Ctrl-C and SIGTERM run
 * in the shared suite (signals.test.ts, with suites/docker.ts).
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeRegistry } from "../fakes/docker/registry";
import { BINARY, BUSYBOX, dockerE2eSuite, containersLabelled, containersLeft, engine, NODE, SOCKET, uniqueLabel } from "./_docker-helpers";

const { cli, label } = dockerE2eSuite();
const TIMEOUT = 60_000;

describe("docker e2e: run", () => {
  test("a command's stdout, stderr and exit code come through, and the container is gone afterwards", async () => {
    const mark = label("run");
    const result = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "echo to-out; echo to-err >&2; exit 3"]);
    expect(result.stdout).toBe("to-out\n");
    expect(result.stderr).toBe("to-err\n");
    expect(result.code).toBe(3);
    expect(await containersLeft("e2e", mark)).toEqual([]);
  }, TIMEOUT);

  test("--file runs a JavaScript file in an image that has node, with its arguments", async () => {
    const dir = join(cli.home, "js");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "hello.js"), 'console.log("args", JSON.stringify(process.argv.slice(2))); process.exit(4);\n');
    const result = await cli.run(["run", "-p", "docker", "--image", NODE, "--file", join(dir, "hello.js"), "--", "a b", "c"]);
    expect(result.stdout).toBe('args ["a b","c"]\n');
    expect(result.code).toBe(4);
  }, TIMEOUT);

  test("an image without the language's runtime: one clear line, exit 125, no container left", async () => {
    const mark = label("noruntime");
    const file = join(cli.home, "prog.py");
    writeFileSync(file, "print('never')\n");
    const result = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "--file", file]);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("python3 is not installed in this sandbox (image sandboxes-test/busybox)");
    expect(result.stderr).not.toContain("    at ");
    expect(await containersLeft("e2e", mark)).toEqual([]);
  }, TIMEOUT);

  test("an image that cannot be pulled: a clear error naming it, exit 125, no container left", async () => {
    // Port 1 on loopback refuses at once: the engine tries no outside registry.
    const mark = label("nopull");
    const result = await cli.run(["run", "-p", "docker", "--image", "127.0.0.1:1/sandboxes/absent:1", "-l", `e2e=${mark}`, "true"]);
    expect(result.code).toBe(125);
    expect(result.stderr).toContain("cannot pull image 127.0.0.1:1/sandboxes/absent:1");
    expect(await containersLeft("e2e", mark)).toEqual([]);
  }, TIMEOUT);

  test("an image the engine lacks is pulled first (fake registry on 127.0.0.1); an unknown one is a clear error", async () => {
    const registry = await startFakeRegistry(SOCKET, BUSYBOX);
    const image = `${registry.host}/sbx/e2e:v1`;
    const mark = label("pull");
    try {
      const pulled = await cli.run(["run", "-p", "docker", "--image", image, "-l", `e2e=${mark}`, "cat /etc/fake-registry"]);
      expect(pulled.stdout).toStartWith("served at ");
      expect(pulled.code).toBe(0);
      expect((await engine("GET", `/images/${image}/json`)).status).toBe(200);
      const absent = await cli.run(["run", "-p", "docker", "--image", `${registry.host}/sbx/absent:v1`, "-l", `e2e=${mark}`, "true"]);
      expect(absent.code).toBe(125);
      expect(absent.stderr).toContain(`cannot pull image ${registry.host}/sbx/absent:v1`);
      expect(absent.stderr).toContain("manifest unknown");
      expect(await containersLeft("e2e", mark)).toEqual([]);
    } finally {
      registry.stop();
      await engine("DELETE", `/images/${image}?force=true`);
    }
  }, TIMEOUT);

  test("stdin reaches the command and --timeout kills it with 124: its processes and its container are gone", async () => {
    const piped = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "tr a-z A-Z"], { stdin: "shout\n" });
    expect(piped.stdout).toBe("SHOUT\n");
    expect(piped.code).toBe(0);
    const mark = label("timeout");
    const slow = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "--timeout", "1", "echo begun; sleep 30; echo never"]);
    expect(slow.stdout).toBe("begun\n");
    expect(slow.code).toBe(124);
    expect(await containersLeft("e2e", mark)).toEqual([]);
    // In a kept sandbox the container stays: the timed-out command tree must not.
    const kept = label("timeout-kept");
    const made = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "--keep", "-l", `e2e=${kept}`, "--json", "true"]);
    const id = JSON.parse(made.stdout).sandbox_id as string;
    try {
      const tree = await cli.run(["exec", id, "-p", "docker", "-t", "1", "sleep 3031 & sleep 3031; echo never"]);
      expect(tree.code).toBe(124);
      const ps = await cli.run(["exec", id, "-p", "docker", "ps -o args"]);
      expect(ps.stdout).toContain("ps -o args");
      expect(ps.stdout).not.toContain("sleep 3031");
    } finally {
      await cli.run(["destroy", id, "-p", "docker"]);
    }
    expect(await containersLeft("e2e", kept)).toEqual([]);
  }, TIMEOUT);

  test("--network none, --cpus, --memory and --pids reach the container", async () => {
    const mark = label("resources");
    const result = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "--keep", "-l", `e2e=${mark}`, "--network", "none", "--cpus", "0.5", "--memory", "64m", "--pids", "50", "ls /sys/class/net"]);
    expect(result.stdout).toBe("lo\n");
    expect(result.code).toBe(0);
    const [container] = await containersLabelled("e2e", mark);
    const inspect = await engine<{ HostConfig: { NanoCpus: number; Memory: number; PidsLimit: number; NetworkMode: string } }>("GET", `/containers/${container!.Id}/json`);
    expect(inspect.data.HostConfig).toMatchObject({ NanoCpus: 500_000_000, Memory: 64 * 1024 * 1024, PidsLimit: 50, NetworkMode: "none" });
  }, TIMEOUT);

  test("--ttl: a kept sandbox stops and disappears by itself", async () => {
    const mark = label("ttl");
    const result = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "--keep", "--ttl", "2", "-l", `e2e=${mark}`, "true"]);
    expect(result.code).toBe(0);
    expect(await containersLabelled("e2e", mark)).toHaveLength(1);
    let left = 1;
    for (let i = 0; i < 100 && left > 0; i++) {
      await Bun.sleep(200);
      left = (await containersLabelled("e2e", mark)).length;
    }
    expect(left).toBe(0);
  }, TIMEOUT);
});

describe("docker e2e: a kept sandbox through list, exec, reuse, cp and destroy", () => {
  const mark = label("kept");
  const name = uniqueLabel("box");
  let id = "";

  test("run --keep --name prints the full id; list shows it with its name and labels", async () => {
    const kept = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "--keep", "--name", name, "-l", `e2e=${mark}`, "-l", "role=worker", "echo first > /tmp/state"]);
    expect(kept.code).toBe(0);
    id = /kept sandbox ([0-9a-f]{64})/.exec(kept.stderr)?.[1] ?? "";
    expect(id).toHaveLength(64);
    const containers = await containersLabelled("e2e", mark);
    expect(containers.map((c) => c.Id)).toEqual([id]);
    expect(containers[0]!.Labels).toMatchObject({ "sandboxes.managed": "true", "sandboxes.name": name, "sandboxes.label.role": "worker" });

    const table = await cli.run(["list", "-p", "docker", "-l", `e2e=${mark}`]);
    expect(table.code).toBe(0);
    const row = table.stdout.split("\n").find((line) => line.startsWith(id));
    expect(row?.split("\t").slice(0, 4)).toEqual([id, "docker", name, "running"]);
    const json = JSON.parse((await cli.run(["list", "-p", "docker", "-l", `e2e=${mark}`, "--json"])).stdout);
    expect(json.sandboxes).toHaveLength(1);
    expect(json.sandboxes[0]).toMatchObject({ id, provider: "docker", name, state: "running", labels: { e2e: mark, role: "worker" }, image: BUSYBOX });
    const other = JSON.parse((await cli.run(["list", "-p", "docker", "-l", `e2e=${mark}-other`, "--json"])).stdout);
    expect(other.sandboxes).toEqual([]);
  }, TIMEOUT);

  test("exec by name and by id: env, workdir, stdin and the exit code", async () => {
    const byName = await cli.run(["exec", name, "-e", "GREETING=hi there", "-w", "/tmp", 'echo "$GREETING in $(pwd)"; cat state; exit 9']);
    expect(byName.stdout).toBe("hi there in /tmp\nfirst\n");
    expect(byName.code).toBe(9);
    const byId = await cli.run(["exec", id, "-p", "docker", "wc -c"], { stdin: "12345" });
    expect(byId.stdout.trim()).toBe("5");
    expect(byId.code).toBe(0);
  }, TIMEOUT);

  test("stdin: 32 MiB arrive whole, and an endless pipe does not outlive the command", async () => {
    const big = "0123456789abcdef".repeat(2 * 1024 * 1024);
    const counted = await cli.run(["exec", name, "md5sum"], { stdin: big });
    expect(counted.stdout.split(" ")[0]).toBe(new Bun.CryptoHasher("md5").update(big).digest("hex"));
    const endless = Bun.spawn(["sh", "-c", `yes | "$0" exec "$1" 'head -n 2'`, BINARY, name], { env: cli.env(), stdout: "pipe", stderr: "pipe" });
    const watchdog = setTimeout(() => endless.kill("SIGKILL"), 20_000);
    const [stdout, code] = await Promise.all([new Response(endless.stdout).text(), endless.exited]);
    clearTimeout(watchdog);
    expect(stdout).toBe("y\ny\n");
    expect(code).toBe(0);
  }, TIMEOUT);

  test("run --reuse with the same label runs in the same container and leaves it running", async () => {
    const reused = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "--reuse", "-l", `e2e=${mark}`, "cat /tmp/state"]);
    expect(reused.stdout).toBe("first\n");
    expect(reused.stderr).toContain(`reusing sandbox ${id}`);
    expect(reused.code).toBe(0);
    const containers = await containersLabelled("e2e", mark);
    expect(containers.map((c) => [c.Id, c.State])).toEqual([[id, "running"]]);
  }, TIMEOUT);

  test("cp uploads and downloads a binary file and a directory byte for byte", async () => {
    const local = join(cli.home, "cp");
    mkdirSync(join(local, "tree", "nested"), { recursive: true });
    const bytes = new Uint8Array(200_000).map((_, i) => (i * 7919 + (i >> 8)) % 256);
    writeFileSync(join(local, "blob.bin"), bytes);
    writeFileSync(join(local, "tree", "nested", "run.sh"), "#!/bin/sh\necho from-tree\n", { mode: 0o755 });

    expect((await cli.run(["cp", join(local, "blob.bin"), `${name}:/data/in/blob.bin`])).code).toBe(0);
    expect((await cli.run(["cp", join(local, "tree"), `${id}:/data/`])).code).toBe(0);
    const inside = await cli.run(["exec", name, "wc -c < /data/in/blob.bin; /data/tree/nested/run.sh"]);
    expect(inside.stdout.replace(/ /g, "")).toBe("200000\nfrom-tree\n");

    const back = join(cli.home, "back");
    mkdirSync(back);
    expect((await cli.run(["cp", `${name}:/data/in/blob.bin`, join(back, "copy.bin")])).code).toBe(0);
    expect(new Uint8Array(readFileSync(join(back, "copy.bin")))).toEqual(bytes);
    expect((await cli.run(["cp", `${name}:/data/tree`, back])).code).toBe(0);
    expect(readFileSync(join(back, "tree", "nested", "run.sh"), "utf8")).toBe("#!/bin/sh\necho from-tree\n");
    expect(statSync(join(back, "tree", "nested", "run.sh")).mode & 0o111).not.toBe(0);

    const missing = await cli.run(["cp", `${name}:/data/absent.txt`, back]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("/data/absent.txt");
  }, TIMEOUT);

  test("destroy by name removes the container; a second destroy exits 0 noting it is gone", async () => {
    const destroyed = await cli.run(["destroy", name, "-p", "docker"]);
    expect(destroyed.code).toBe(0);
    expect(destroyed.stdout).toContain(id);
    const listed = await cli.run(["list", "-p", "docker", "-l", `e2e=${mark}`, "--json"]);
    expect(JSON.parse(listed.stdout).sandboxes).toEqual([]);
    expect(await containersLeft("e2e", mark)).toEqual([]);
    expect((await engine("GET", `/containers/${id}/json`)).status).toBe(404);
    const again = await cli.run(["destroy", name, "-p", "docker"]);
    expect(again).toMatchObject({ code: 0, stdout: "" });
    expect(again.stderr).toContain(`${name}: no such sandbox (already destroyed?), nothing to destroy`);
  }, TIMEOUT);
});

describe("docker e2e: no engine", () => {
  test("a DOCKER_HOST socket that is missing or dead: one clear line each, exit 125", async () => {
    const missing = await cli.run(["run", "-p", "docker", "true"], { env: { DOCKER_HOST: "unix:///nowhere/docker.sock" } });
    expect(missing.code).toBe(125);
    expect(missing.stderr).toContain("provider docker is not configured: DOCKER_HOST=unix:///nowhere/docker.sock, but /nowhere/docker.sock does not exist");
    const dead = join(cli.home, "dead.sock");
    writeFileSync(dead, "");
    const unreachable = await cli.run(["run", "-p", "docker", "true"], { env: { DOCKER_HOST: `unix://${dead}` } });
    expect(unreachable.code).toBe(125);
    expect(unreachable.stderr).toContain(`docker: cannot reach the Docker Engine at unix://${dead}`);
    expect(unreachable.stderr).not.toContain("    at ");
    const providers = await cli.run(["providers"], { env: { DOCKER_HOST: "unix:///nowhere/docker.sock" } });
    expect(providers.stdout).toMatch(/^docker\tno\tDOCKER_HOST=unix:\/\/\/nowhere\/docker.sock, but/m);
  }, TIMEOUT);
});

describe("docker e2e: containers that are not ours", () => {
  test("list and destroy --all never touch a container without our labels", async () => {
    const stranger = await engine<{ Id: string }>("POST", "/containers/create", { Image: BUSYBOX, Cmd: ["sleep", "60"], Labels: { "sandboxes.label.e2e": "stranger" } });
    try {
      const listed = await cli.run(["list", "-p", "docker", "--json"]);
      expect(JSON.parse(listed.stdout).sandboxes.map((s: { id: string }) => s.id)).not.toContain(stranger.data.Id);
      const byId = await cli.run(["exec", stranger.data.Id, "-p", "docker", "true"]);
      expect(byId.code).toBe(125);
      await cli.run(["destroy", "--all", "-l", "e2e=stranger", "-p", "docker", "--yes"]);
      expect((await engine("GET", `/containers/${stranger.data.Id}/json`)).status).toBe(200);
    } finally {
      await engine("DELETE", `/containers/${stranger.data.Id}?force=true`);
    }
  }, TIMEOUT);
});
