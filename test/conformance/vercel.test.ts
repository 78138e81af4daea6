import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { vercelDescriptor } from "../../src/providers/vercel";
import { startFakeVercel, type FakeVercel } from "../fakes/vercel/server";
import { vercelBackend } from "./backends";
import { testProvider } from "./suite";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-vercel-"));
let fake: FakeVercel;

beforeAll(async () => {
  // Two per page, so list() has to follow the cursor to see everything.
  fake = await startFakeVercel({ pageSize: 2 });
});

afterAll(async () => {
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

testProvider("vercel (fake Vercel Sandbox API on 127.0.0.1, our own client)", vercelDescriptor.capabilities, () => vercelDescriptor.load({ env: { ...fake.env() }, config: {}, stateDir }), {
  backend: vercelBackend(() => fake),
});

describe("vercel fake bookkeeping", () => {
  test("the suite left no sandbox behind", async () => {
    // Runs after the suite's afterAll destroyed what it created.
    await Bun.sleep(0);
    expect([...fake.sandboxes.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThanOrEqual(2);
  });
});

// The same suite against the real service, only when real credentials are present.
const real = process.env.VERCEL_TOKEN && process.env.VERCEL_TEAM_ID && process.env.VERCEL_PROJECT_ID && !process.env.VERCEL_API_URL && !process.env.VERCEL_TOKEN.startsWith("fake-");
describe.skipIf(!real)("vercel real service (VERCEL_TOKEN, VERCEL_TEAM_ID and VERCEL_PROJECT_ID set)", () => {
  testProvider("vercel (real service)", vercelDescriptor.capabilities, () => vercelDescriptor.load({ env: process.env, config: {}, stateDir }), { timeout: 180_000 });
});
