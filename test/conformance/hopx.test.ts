import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hopxDescriptor } from "../../src/providers/hopx";
import { startFakeHopx, type FakeHopx } from "../fakes/hopx/server";
import { testProvider } from "./suite";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-hopx-"));
let fake: FakeHopx;

beforeAll(async () => {
  // Two per page, so list() has to follow next_cursor to see everything.
  fake = await startFakeHopx({ pageSize: 2 });
});

afterAll(async () => {
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

testProvider("hopx (fake Hopx on 127.0.0.1, our own client)", hopxDescriptor.capabilities, () => hopxDescriptor.load({ env: { ...fake.env() }, config: {}, stateDir }));

describe("hopx fake bookkeeping", () => {
  test("the suite left no sandbox behind", async () => {
    // Runs after the suite's afterAll destroyed what it created.
    await Bun.sleep(0);
    expect([...fake.sandboxes.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThanOrEqual(2);
  });
});

// The same suite against the real service, only when a real key is present.
const realKey = process.env.HOPX_API_KEY;
const isReal = !!realKey && !process.env.HOPX_API_URL && !realKey.startsWith("hopx_fake");
describe.skipIf(!isReal)("hopx real service (a real HOPX_API_KEY set)", () => {
  const realState = mkdtempSync(join(tmpdir(), "sandboxes-conf-hopx-real-"));
  testProvider("hopx (real service)", hopxDescriptor.capabilities, () => hopxDescriptor.load({ env: process.env, config: {}, stateDir: realState }), { timeout: 120_000 });
});
