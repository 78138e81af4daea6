import { afterAll, beforeAll, describe } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daytonaDescriptor } from "../../src/providers/daytona";
import { FakeDaytona } from "../fakes/daytona/server";
import { DAYTONA_RESOURCES_IMAGE, daytonaBackend } from "./backends";
import { testProvider } from "./suite";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-daytona-"));
// A Daytona minute lasts a second here, so the ttl case sees the TTL end.
const fake = new FakeDaytona({ apiKey: "conformance-key", minuteMs: 1000 });

beforeAll(() => void fake.start());
afterAll(async () => {
  await fake.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

// The real SDK, pointed at the fake through its own apiUrl setting.
testProvider("daytona (real SDK against the local fake)", daytonaDescriptor.capabilities, () =>
  daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "conformance-key", DAYTONA_API_URL: fake.apiUrl }, config: {}, stateDir }),
  { backend: daytonaBackend(() => fake), resourcesImage: DAYTONA_RESOURCES_IMAGE },
);

// The same suite against the real service: skipped when, and only when, no real key is present.
const realKey = process.env.DAYTONA_API_KEY;
describe.skipIf(!realKey || realKey === "dummy")("daytona real service (DAYTONA_API_KEY set)", () => {
  testProvider("daytona (real service)", daytonaDescriptor.capabilities, () => daytonaDescriptor.load({ env: process.env, config: {}, stateDir }), { timeout: 180_000, resourcesImage: DAYTONA_RESOURCES_IMAGE });
});
