/**
 * Proves the hand-written contract fake faithful. There is no official JS client of the bridge
 * API, so the reference is the REAL published router of @cloudflare/sandbox 0.12.10 (bridge.ts):
 * every call our client makes (create, exec with its SSE, write and read a file, the terminal
 * socket, running, destroy), and the refusals it relies on, are sent to both, and the answers
 * (status, content type, error JSON, decoded events, bytes) must be the same.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readEvents } from "../../../src/providers/cloudflare/api";
import { startFakeCloudflare, type FakeCloudflare } from "./server";

const KEY = "proof-key";
let real: FakeCloudflare;
let contract: FakeCloudflare;

beforeAll(async () => {
  [real, contract] = await Promise.all([startFakeCloudflare({ mode: "bridge", apiKey: KEY }), startFakeCloudflare({ mode: "contract", apiKey: KEY })]);
});

afterAll(async () => {
  await Promise.all([real?.close(), contract?.close()]);
});

interface Answer {
  status: number;
  type: string | null;
  body: string;
}

async function call(fake: FakeCloudflare, method: string, path: string, init: { body?: BodyInit; json?: unknown; key?: string | null } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (init.key !== null) headers.Authorization = `Bearer ${init.key ?? KEY}`;
  if (init.json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${fake.url}${path}`, { method, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body });
  return { status: response.status, type: response.headers.get("content-type")?.split(";")[0] ?? null, body: await response.text() };
}

/** The same call to both; the answers must match. */
async function both(method: string, path: (fake: FakeCloudflare, id: string) => string, init: Parameters<typeof call>[3] = {}): Promise<Answer> {
  const [a, b] = await Promise.all([call(real, method, path(real, ids.get(real)!), init), call(contract, method, path(contract, ids.get(contract)!), init)]);
  expect(b).toEqual(a);
  return a;
}

/** exec on both; the events, decoded and joined per stream, must match. */
async function execBoth(body: unknown): Promise<{ stdout: string; stderr: string; end: string[] }> {
  const run = async (fake: FakeCloudflare) => {
    const response = await fetch(`${fake.url}/v1/sandbox/${ids.get(fake)}/exec`, { method: "POST", headers: { Authorization: `Bearer ${KEY}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const out = { stdout: "", stderr: "", end: [] as string[] };
    for await (const event of readEvents(response.body!)) {
      if (event.event === "stdout" || event.event === "stderr") out[event.event] += Buffer.from(event.data, "base64").toString("utf8");
      else out.end.push(`${event.event} ${event.data}`);
    }
    return out;
  };
  const [a, b] = await Promise.all([run(real), run(contract)]);
  expect(b).toEqual(a);
  return a;
}

const ids = new Map<FakeCloudflare, string>();

describe("the hand-written fake answers as the real bridge router does", () => {
  test("create: a 26-character base32 id, no container yet; a wrong key is 401 with the bridge's JSON", async () => {
    for (const fake of [real, contract]) {
      const answer = await call(fake, "POST", "/v1/sandbox");
      expect(answer.status).toBe(200);
      const { id } = JSON.parse(answer.body) as { id: string };
      expect(id).toMatch(/^[a-z2-7]{26}$/);
      ids.set(fake, id);
      expect(fake.live()).toEqual([]);
    }
    const refused = await both("POST", () => "/v1/sandbox", { key: "wrong" });
    expect(refused).toEqual({ status: 401, type: "application/json", body: JSON.stringify({ error: "Unauthorized", code: "unauthorized" }) });
    expect((await both("POST", (_f, id) => `/v1/sandbox/${id}/exec`, { key: null, json: { argv: ["true"] } })).status).toBe(401);
    expect((await both("GET", () => "/v1/sandbox/NOT-VALID/running")).status).toBe(400);
  });

  test("exec: output and exit code as events; argv words that need quoting arrive intact", async () => {
    const result = await execBoth({ argv: ["sh", "-c", 'printf "%s|" "$@"; echo; echo err >&2; exit 3', "sh", "a b", "it's", "$HOME", "line\nbreak", "tab\there", "back\\slash"] });
    expect(result).toEqual({ stdout: "a b|it's|$HOME|line\nbreak|tab\there|back\\slash|\n", stderr: "err\n", end: ['exit {"exit_code":3}'] });
    expect((await execBoth({ argv: ["pwd"], cwd: "sub/.." })).stdout).toBe("/workspace\n");
    expect((await execBoth({ argv: ["sh", "-c", "kill -9 $$"] })).end).toEqual(['exit {"exit_code":137}']);
  });

  test("exec refusals: empty argv (400), bad JSON (400), a cwd outside /workspace (403)", async () => {
    expect(await both("POST", (_f, id) => `/v1/sandbox/${id}/exec`, { json: { argv: [] } })).toMatchObject({ status: 400, body: JSON.stringify({ error: "argv must be a non-empty array", code: "invalid_request" }) });
    expect(await both("POST", (_f, id) => `/v1/sandbox/${id}/exec`, { body: "{not json" })).toMatchObject({ status: 400 });
    expect(await both("POST", (_f, id) => `/v1/sandbox/${id}/exec`, { json: { argv: ["pwd"], cwd: "/tmp" } })).toMatchObject({
      status: 403,
      body: JSON.stringify({ error: "cwd must resolve to a location within /workspace", code: "invalid_request" }),
    });
  });

  test("files: bytes in and out under /workspace; outside is 403, missing is 404, over 32 MiB is 413", async () => {
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 31) % 256);
    expect(await both("PUT", (_f, id) => `/v1/sandbox/${id}/file/workspace/blob.bin`, { body: bytes })).toEqual({ status: 200, type: "application/json", body: '{"ok":true}' });
    const read = await Promise.all([real, contract].map(async (fake) => {
      const response = await fetch(`${fake.url}/v1/sandbox/${ids.get(fake)}/file/workspace/blob.bin`, { headers: { Authorization: `Bearer ${KEY}` } });
      expect(response.headers.get("content-type")).toBe("application/octet-stream");
      return new Uint8Array(await response.arrayBuffer());
    }));
    expect(read[0]).toEqual(bytes);
    expect(read[1]).toEqual(bytes);
    expect(await both("PUT", (_f, id) => `/v1/sandbox/${id}/file/tmp/x`, { body: "x" })).toMatchObject({ status: 403, body: JSON.stringify({ error: "path must resolve to a location within /workspace", code: "invalid_request" }) });
    expect(await both("GET", (_f, id) => `/v1/sandbox/${id}/file/workspace/../etc/passwd`)).toMatchObject({ status: 403 });
    expect(await both("GET", (_f, id) => `/v1/sandbox/${id}/file/workspace/missing`)).toMatchObject({ status: 404, body: JSON.stringify({ error: "File not found: /workspace/missing", code: "workspace_read_not_found" }) });
    const big = await both("PUT", (_f, id) => `/v1/sandbox/${id}/file/workspace/big`, { body: new Uint8Array(32 * 1024 * 1024 + 1) });
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).code).toBe("payload_too_large");
  }, 30_000);

  test("running, and the terminal socket: ready, output, resize, exit code", async () => {
    expect(await both("GET", (_f, id) => `/v1/sandbox/${id}/running`)).toEqual({ status: 200, type: "application/json", body: '{"running":true}' });
    // A program for the terminal's `shell`, made by an exec as our client does.
    await execBoth({ argv: ["sh", "-c", 'printf "#!/bin/sh\\nread line; stty size; echo got:\\$line; exit 4\\n" > /tmp/prog && chmod 700 /tmp/prog'] });
    const session = async (fake: FakeCloudflare) => {
      const url = `${fake.url.replace("http", "ws")}/v1/sandbox/${ids.get(fake)}/pty?cols=70&rows=20&shell=/tmp/prog`;
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${KEY}` } } as unknown as string[]);
      ws.binaryType = "arraybuffer";
      const texts: string[] = [];
      let output = "";
      const closed = new Promise<void>((resolve) => ws.addEventListener("close", () => resolve()));
      ws.addEventListener("message", (event) => {
        if (typeof event.data === "string") texts.push(event.data);
        else output += new TextDecoder().decode(event.data as ArrayBuffer);
      });
      await new Promise((resolve) => ws.addEventListener("open", resolve));
      ws.send(JSON.stringify({ type: "resize", cols: 90, rows: 30 }));
      await Bun.sleep(100);
      ws.send(new TextEncoder().encode("hello\r"));
      await closed;
      return { texts, output };
    };
    const [a, b] = await Promise.all([session(real), session(contract)]);
    for (const result of [a, b]) {
      expect(result.texts).toEqual(['{"type":"ready"}', '{"type":"exit","code":4}']);
      expect(result.output).toContain("30 90");
      expect(result.output).toContain("got:hello");
    }
  }, 30_000);

  test("destroy: 204, also for an id never used; the container is gone", async () => {
    expect(real.live()).toEqual([ids.get(real)!]);
    expect(contract.live()).toEqual([ids.get(contract)!]);
    expect(await both("DELETE", (_f, id) => `/v1/sandbox/${id}`)).toEqual({ status: 204, type: null, body: "" });
    expect(real.live()).toEqual([]);
    expect(contract.live()).toEqual([]);
    expect(real.containers.live.size).toBe(0);
    expect(contract.containers.live.size).toBe(0);
    expect(await both("DELETE", () => "/v1/sandbox/neverusedaaaaaaaaaaaaaaaaaa")).toEqual({ status: 204, type: null, body: "" });
    expect(await both("GET", () => "/health", { key: null })).toEqual({ status: 200, type: "application/json", body: '{"ok":true}' });
  });
});
