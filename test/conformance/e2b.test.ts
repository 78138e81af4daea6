import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { e2bDescriptor } from "../../src/providers/e2b";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { testProvider } from "./suite";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-e2b-"));
let fake: FakeE2B;

beforeAll(async () => {
  // Two per page, so list() has to follow x-next-token to see everything.
  fake = await startFakeE2B({ pageSize: 2 });
});

afterAll(async () => {
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

testProvider("e2b (fake E2B on 127.0.0.1, real SDK)", e2bDescriptor.capabilities, () => e2bDescriptor.load({ env: { ...fake.env() }, config: {}, stateDir }));

describe("e2b fake bookkeeping", () => {
  test("the suite left no sandbox behind", async () => {
    // Runs after the suite's afterAll destroyed what it created.
    await Bun.sleep(0);
    expect([...fake.sandboxes.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThanOrEqual(2);
  });
});

// The same suite against the real service, only when a real key is present.
const realKey = process.env.E2B_API_KEY;
const isReal = !!realKey && !process.env.E2B_API_URL && !realKey.startsWith("e2b_fake");
describe.skipIf(!isReal)("e2b real service (a real E2B_API_KEY set)", () => {
  testProvider("e2b (real service)", e2bDescriptor.capabilities, () => e2bDescriptor.load({ env: process.env, config: {}, stateDir }), { timeout: 120_000 });
});
