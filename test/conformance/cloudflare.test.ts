import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cloudflareDescriptor } from "../../src/providers/cloudflare";
import { startFakeCloudflare, type FakeCloudflare } from "../fakes/cloudflare/server";
import { testProvider } from "./suite";

// The same suite twice: against our hand-written contract fake, and against the real published
// bridge router of @cloudflare/sandbox 0.12.10 running in Bun behind fake Durable Objects.
for (const mode of ["contract", "bridge"] as const) {
  const stateDir = mkdtempSync(join(tmpdir(), `sandboxes-conf-cloudflare-${mode}-`));
  let fake: FakeCloudflare;

  beforeAll(async () => {
    fake = await startFakeCloudflare({ mode });
  });

  afterAll(async () => {
    await fake.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  testProvider(`cloudflare (${mode === "bridge" ? "the real bridge router in Bun" : "hand-written fake Worker"} on 127.0.0.1, our own client)`, cloudflareDescriptor.capabilities, () =>
    cloudflareDescriptor.load({ env: { ...fake.env() }, config: {}, stateDir }),
  );

  describe(`cloudflare ${mode} fake bookkeeping`, () => {
    test("the suite left no container behind and really used the Worker", async () => {
      await Bun.sleep(0);
      expect(fake.live()).toEqual([]);
      expect(fake.issued.length).toBeGreaterThanOrEqual(2);
      expect(fake.execs.length + fake.requests.filter((r) => r.endsWith("/exec")).length).toBeGreaterThan(5);
    });
  });
}

// The same suite against a real Worker, only when its URL is set (and is not a fake on this machine).
const realUrl = process.env.CLOUDFLARE_SANDBOX_URL;
const isReal = !!realUrl && !/^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(realUrl);
describe.skipIf(!isReal)("cloudflare real Worker (CLOUDFLARE_SANDBOX_URL set)", () => {
  const realState = mkdtempSync(join(tmpdir(), "sandboxes-conf-cloudflare-real-"));
  testProvider("cloudflare (real Worker)", cloudflareDescriptor.capabilities, () => cloudflareDescriptor.load({ env: process.env, config: {}, stateDir: realState }), { timeout: 180_000 });
});
