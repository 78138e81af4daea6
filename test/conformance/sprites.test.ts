import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spritesDescriptor } from "../../src/providers/sprites";
import { startFakeSprites, type FakeSprites } from "../fakes/sprites/server";
import { spritesBackend } from "./backends";
import { testProvider } from "./suite";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-sprites-"));
let fake: FakeSprites;

beforeAll(async () => {
  // Two per page, so list() has to follow the continuation token to see everything.
  fake = await startFakeSprites({ pageSize: 2 });
});

afterAll(async () => {
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

testProvider("sprites (fake Sprites API on 127.0.0.1, our own client)", spritesDescriptor.capabilities, () => spritesDescriptor.load({ env: { ...fake.env() }, config: {}, stateDir }), {
  backend: spritesBackend(() => fake),
});

describe("sprites fake bookkeeping", () => {
  test("the suite left no sprite behind", async () => {
    // Runs after the suite's afterAll destroyed what it created.
    await Bun.sleep(0);
    expect([...fake.sprites.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThanOrEqual(2);
  });
});

// The same suite against the real service, only when a real token is present.
const realToken = process.env.SPRITES_TOKEN;
const isReal = !!realToken && !process.env.SPRITES_API_URL && !realToken.startsWith("fake-");
describe.skipIf(!isReal)("sprites real service (a real SPRITES_TOKEN set)", () => {
  testProvider("sprites (real service)", spritesDescriptor.capabilities, () => spritesDescriptor.load({ env: process.env, config: {}, stateDir }), { timeout: 180_000 });
});
