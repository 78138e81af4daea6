/**
 * The fake Hopx is faithful: the OFFICIAL @hopx-ai/sdk (devDependency, pinned) drives it through
 * every call our own client makes — create (+ the env PATCH), info, list with its cursor, token
 * refresh by connect, commands/run, files write (text and base64) / read / download, the WS
 * terminal, and delete — and gets the answers it expects.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Sandbox } from "@hopx-ai/sdk";
import { startFakeHopx, type FakeHopx } from "./server";

let fake: FakeHopx;

beforeAll(async () => {
  fake = await startFakeHopx({ pageSize: 2, templates: ["code-interpreter", "base"] });
});

afterAll(async () => {
  await fake.close();
});

describe("the official @hopx-ai/sdk against the fake", () => {
  test("create, info, commands, env, files, list over pages, connect, terminal, kill", async () => {
    const sandbox = await Sandbox.create({ template: "code-interpreter", apiKey: fake.apiKey, baseURL: fake.url, timeoutSeconds: 600, envVars: { FROM_CREATE: "yes" } });
    expect(fake.creates.at(-1)).toMatchObject({ template_name: "code-interpreter", timeout_seconds: 600, env_vars: { FROM_CREATE: "yes" } });
    // The SDK sends the env again through the agent, as our provider does.
    expect(fake.requests).toContain("PATCH /env");

    const info = await sandbox.getInfo();
    expect(info).toMatchObject({ sandboxId: sandbox.sandboxId, templateName: "code-interpreter", status: "running", publicHost: fake.url, timeoutSeconds: 600 });
    expect(info.resources).toEqual({ vcpu: 2, memoryMb: 2048, diskMb: 10240 });

    const ran = await sandbox.commands.run('echo "$FROM_CREATE $PER_RUN"; pwd; echo oops >&2; exit 3', { env: { PER_RUN: "run" } });
    expect(ran).toMatchObject({ stdout: "yes run\n/workspace\n", stderr: "oops\n", exit_code: 3, success: false });
    const inTmp = await sandbox.commands.run("pwd", { workingDir: "/tmp" });
    expect(inTmp.stdout).toBe("/tmp\n");
    expect(fake.commands.at(-1)).toMatchObject({ command: "bash", args: ["-c", "pwd"], workdir: "/tmp", timeout: 30 });

    expect(await sandbox.env.getAll()).toEqual({ FROM_CREATE: "yes" });

    await sandbox.files.write("/workspace/hello.txt", "hello\n");
    expect(await sandbox.files.read("/workspace/hello.txt")).toBe("hello\n");
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 13) % 256));
    await sandbox.files.writeBytes("/tmp/blob.bin", bytes);
    expect(Buffer.compare(await sandbox.files.readBytes("/tmp/blob.bin"), bytes)).toBe(0);
    expect(Buffer.compare(await sandbox.files.download("/tmp/blob.bin"), bytes)).toBe(0);
    await expect(sandbox.files.read("/tmp/none.txt")).rejects.toThrow("file not found");

    // Three sandboxes, two per page: list follows next_cursor.
    const others = [await Sandbox.create({ template: "base", apiKey: fake.apiKey, baseURL: fake.url }), await Sandbox.create({ template: "base", apiKey: fake.apiKey, baseURL: fake.url })];
    const ids: string[] = [];
    for await (const listed of Sandbox.iter({ apiKey: fake.apiKey, baseURL: fake.url })) ids.push(listed.sandboxId);
    expect(ids.sort()).toEqual([sandbox.sandboxId, ...others.map((s) => s.sandboxId)].sort());
    expect(fake.requests.filter((r) => r === "GET /v1/sandboxes").length).toBeGreaterThanOrEqual(2);

    // connect: info, then a token refresh; the new token works for the agent.
    const again = await Sandbox.connect(sandbox.sandboxId, fake.apiKey, fake.url);
    expect(fake.requests.at(-1)).toBe(`POST /v1/sandboxes/${sandbox.sandboxId}/token/refresh`);
    expect((await again.commands.run("cat /workspace/hello.txt")).stdout).toBe("hello\n");

    const terminal = again.terminal;
    const ws = await terminal.connect();
    terminal.resize(ws, 91, 27);
    terminal.sendInput(ws, "stty size; exit 5\n");
    let output = "";
    let exit: unknown;
    for await (const message of terminal.output(ws) as AsyncIterable<{ type: string; data?: string; code?: number }>) {
      if (message.type === "output") output += message.data;
      if (message.type === "exit") exit = message.code;
    }
    expect(output).toContain("27 91");
    expect(exit).toBe(5);

    for (const s of [sandbox, ...others]) await s.kill();
    expect(fake.sandboxes.size).toBe(0);
    await expect(Sandbox.connect(sandbox.sandboxId, fake.apiKey, fake.url)).rejects.toThrow("not found");
  }, 60_000);

  test("an unknown template and a wrong API key are the errors the SDK knows", async () => {
    await expect(Sandbox.create({ template: "no-such-template", apiKey: fake.apiKey, baseURL: fake.url })).rejects.toThrow("Template 'no-such-template' not found");
    await expect(Sandbox.list({ apiKey: "wrong", baseURL: fake.url })).rejects.toMatchObject({ name: "AuthenticationError" });
    expect(fake.sandboxes.size).toBe(0);
  });
});
