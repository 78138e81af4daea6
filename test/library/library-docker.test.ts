/**
 * The library on the docker provider (a real engine, the offline busybox test image): run() takes
 * the one-shot path there, Sandbox the keepalive one; neither leaves a container behind.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { close, run, Sandbox } from "../../src/index";
import { BUSYBOX, containersLeft, requireEngine, uniqueLabel } from "../e2e/_docker-helpers";

const root = mkdtempSync(join(tmpdir(), "sandboxes-lib-docker-"));
const environment = { HOME: root, XDG_STATE_HOME: join(root, "state"), XDG_CONFIG_HOME: join(root, "config"), PATH: process.env.PATH ?? "/usr/bin:/bin" };

beforeAll(async () => {
  // Fails loudly when no engine answers: CI runs scripts/ci/docker.sh first.
  await requireEngine();
});
afterAll(async () => {
  await close();
  rmSync(root, { recursive: true, force: true });
});

describe("library on docker", () => {
  test("run: output, exit code and signals come from the container; nothing is left", async () => {
    const mark = uniqueLabel("lib");
    const result = await run("echo out; echo err >&2; exit 7", { provider: "docker", image: BUSYBOX, labels: { lib: mark }, environment });
    expect(result).toMatchObject({ stdout: "out\n", stderr: "err\n", exitCode: 7, provider: "docker" });
    const killed = await run("kill -TERM $$", { provider: "docker", image: BUSYBOX, labels: { lib: mark }, environment });
    expect(killed.exitCode).toBe(143);
    expect(await containersLeft("lib", mark)).toEqual([]);
  }, 60_000);

  test("Sandbox: state persists between execs, stream and timeout work, destroy removes the container", async () => {
    const mark = uniqueLabel("lib");
    const box = await Sandbox.create({ provider: "docker", image: BUSYBOX, labels: { lib: mark }, environment });
    try {
      await box.exec("echo 41 > /tmp/n");
      expect((await box.exec(["sh", "-c", "echo $(( $(cat /tmp/n) + 1 ))"])).stdout).toBe("42\n");
      const events: string[] = [];
      for await (const event of box.stream("echo a; echo b >&2")) events.push(event.type === "exit" ? `exit ${event.exitCode}` : `${event.type}:${event.text}`);
      expect(events.join("")).toContain("stdout:a\n");
      expect(events.join("")).toContain("stderr:b\n");
      expect(events.at(-1)).toBe("exit 0");
      expect(await box.exec("sleep 30", { timeoutMs: 500 })).toMatchObject({ exitCode: 124, timedOut: true });
      expect((await Sandbox.find({ labels: { lib: mark }, provider: "docker", environment }))?.id).toBe(box.id);
    } finally {
      await box.destroy();
    }
    const deadline = Date.now() + 20_000;
    while ((await containersLeft("lib", mark)).length > 0 && Date.now() < deadline) await Bun.sleep(200);
    expect(await containersLeft("lib", mark)).toEqual([]);
  }, 60_000);
});
