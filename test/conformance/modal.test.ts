/**
 * The shared conformance suite through the real `modal` SDK, against the fake Modal on
 * 127.0.0.1 (gRPC over h2c) — and against the real service when real credentials are present.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { modalDescriptor } from "../../src/providers/modal";
import { type FakeModal, startFakeModal } from "../fakes/modal/server";
import { modalBackend } from "./backends";
import { testProvider } from "./suite";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-modal-"));
const realCredentials = Boolean(process.env.MODAL_TOKEN_ID && process.env.MODAL_TOKEN_SECRET && !process.env.MODAL_SERVER_URL);
const realEnv = { ...process.env };

let fake: FakeModal;
// The SDK reads MODAL_SERVER_URL from the process environment when its client is built.
const fakeProvider = async () => {
  fake ??= await startFakeModal();
  process.env.MODAL_SERVER_URL = fake.url;
  process.env.MODAL_CONFIG_PATH = join(stateDir, "no-modal.toml");
  const env = { ...process.env, MODAL_TOKEN_ID: "ak-fake", MODAL_TOKEN_SECRET: "as-fake", HOME: stateDir };
  return modalDescriptor.load({ env, config: {}, stateDir });
};

testProvider("modal (fake server, real SDK)", modalDescriptor.capabilities, fakeProvider, { backend: modalBackend(() => fake) });

describe("modal fake bookkeeping", () => {
  test("the suite leaves no sandbox running", async () => {
    // Runs after the suite's afterAll destroyed what it made.
    await Bun.sleep(10);
    expect(fake.running().map((s) => s.id)).toEqual([]);
    expect(fake.sandboxes.size).toBeGreaterThan(0);
  });
});

afterAll(async () => {
  await fake?.stop();
});

describe.skipIf(!realCredentials)("modal real service (MODAL_TOKEN_ID and MODAL_TOKEN_SECRET set)", () => {
  testProvider("modal (real service)", modalDescriptor.capabilities,
    async () => {
      // The fake suite pointed the SDK at 127.0.0.1 through the process environment: undo that.
      delete process.env.MODAL_SERVER_URL;
      process.env.MODAL_CONFIG_PATH = realEnv.MODAL_CONFIG_PATH ?? "";
      if (!realEnv.MODAL_CONFIG_PATH) delete process.env.MODAL_CONFIG_PATH;
      return modalDescriptor.load({ env: realEnv, config: {}, stateDir });
    },
    { timeout: 180_000 },
  );
});
