/**
 * Fakes that say no, as their services do, and what the compiled binary makes of it: a wrong
 * key gets the service's own status and body, and `sandboxes` answers with one line on stderr,
 * its documented exit code, and no sandbox left on the service.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FakeDaytona } from "../fakes/daytona/server";
import { startFakeCloudflare } from "../fakes/cloudflare/server";
import { startFakeE2B } from "../fakes/e2b/server";
import { startFakeHopx } from "../fakes/hopx/server";
import { startFakeSprites } from "../fakes/sprites/server";
import { startFakeVercel } from "../fakes/vercel/server";
import { ensureBinary } from "../conformance/cli-provider";
import { cli, freshEnv } from "../helpers";

interface Refusing {
  /** Variables that point the binary at the fake with a key it does not accept. */
  wrongKey: Record<string, string>;
  /** The status the service answers a wrong key with, as our message names it. */
  status: number;
  /** How many sandboxes the fake holds. */
  held(): number;
  /** How many creates reached the fake past its authentication. */
  created(): number;
  close(): Promise<void>;
}

const starters: Record<string, () => Promise<Refusing>> = {
  e2b: async () => {
    const fake = await startFakeE2B();
    return { wrongKey: { ...fake.env(), E2B_API_KEY: "e2b_wrong_key" }, status: 401, held: () => fake.sandboxes.size, created: () => fake.creates.length, close: () => fake.close() };
  },
  sprites: async () => {
    const fake = await startFakeSprites();
    return { wrongKey: { ...fake.env(), SPRITES_TOKEN: "wrong-token" }, status: 401, held: () => fake.sprites.size, created: () => fake.creates.length, close: () => fake.close() };
  },
  hopx: async () => {
    const fake = await startFakeHopx();
    return { wrongKey: { ...fake.env(), HOPX_API_KEY: "hopx_wrong_key" }, status: 401, held: () => fake.sandboxes.size, created: () => fake.creates.length, close: () => fake.close() };
  },
  vercel: async () => {
    const fake = await startFakeVercel();
    return { wrongKey: { ...fake.env(), VERCEL_TOKEN: "wrong-token" }, status: 403, held: () => fake.sandboxes.size, created: () => fake.creates.length, close: () => fake.close() };
  },
  cloudflare: async () => {
    const fake = await startFakeCloudflare();
    return { wrongKey: { ...fake.env(), CLOUDFLARE_SANDBOX_API_KEY: "wrong-key" }, status: 401, held: () => fake.live().length, created: () => fake.issued.length, close: () => fake.close() };
  },
  daytona: async () => {
    const fake = new FakeDaytona({ apiKey: "right-key" }).start();
    return {
      wrongKey: { DAYTONA_API_KEY: "wrong-key", DAYTONA_API_URL: fake.apiUrl },
      status: 401,
      held: () => fake.live().length,
      created: () => fake.live().length,
      close: () => fake.stop(),
    };
  },
};

/** Cloudflare lists the sandboxes this machine created (none here) and asks the Worker nothing. */
const listsWithoutAsking = new Set(["cloudflare"]);

beforeAll(ensureBinary, 120_000);

for (const [provider, start] of Object.entries(starters)) {
  describe(`${provider} (fake) refuses a wrong key`, () => {
    let fake: Refusing;
    beforeAll(async () => void (fake = await start()), 30_000);
    afterAll(() => fake?.close());

    test("run: one line naming the provider and the status, exit 125, no sandbox", async () => {
      const { env } = freshEnv(fake.wrongKey);
      const result = await cli(["run", "-p", provider, "echo never"], { env });
      expect(result.code).toBe(125);
      expect(result.stdout).toBe("");
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(`sandboxes: ${provider}`);
      expect(lines[0]).toContain(String(fake.status));
      expect(lines[0]).not.toContain("    at ");
      expect(fake.held()).toBe(0);
      expect(fake.created()).toBe(0);
    }, 30_000);

    test.skipIf(listsWithoutAsking.has(provider))("list: the provider's failure is one line and exit 1", async () => {
      const { env } = freshEnv(fake.wrongKey);
      const result = await cli(["list", "-p", provider], { env });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(result.stderr).toContain(String(fake.status));
    }, 30_000);
  });
}
