/**
 * The shared conformance suite through the COMPILED binary: every Provider call below is a
 * `sandboxes …` process (see cli-provider.ts), for local, docker and the E2B, Daytona and Modal
 * fakes (the real SDKs inside the binary, speaking the real wire protocols to 127.0.0.1).
 * Docker needs a running engine and the offline test images (scripts/ci/docker.sh).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FakeDaytona } from "../fakes/daytona/server";
import { type FakeE2B, startFakeE2B } from "../fakes/e2b/server";
import { type FakeModal, startFakeModal } from "../fakes/modal/server";
import { requireEngine } from "../e2e/_docker-helpers";
import { CliProvider, cliCapabilities, ensureBinary } from "./cli-provider";
import { testProvider } from "./suite";

let e2b: FakeE2B;
let modal: FakeModal;
const daytona = new FakeDaytona({ apiKey: "cli-conformance-key", pageSize: 2 });

beforeAll(async () => {
  await ensureBinary();
  // Two per page: `list` in the binary has to follow the pages to find the suite's sandboxes.
  e2b = await startFakeE2B({ pageSize: 2 });
  daytona.start();
  modal = await startFakeModal();
}, 120_000);

afterAll(async () => {
  await Promise.all([e2b?.close(), daytona.stop(), modal?.stop()]);
});

describe("the CLI provider claims only what the CLI can express", () => {
  test("capabilities are the wrapped provider's, minus pty, resize and mounts", () => {
    expect(cliCapabilities("docker")).toMatchObject({ streaming: true, files: true, stdin: true, labels: true, pty: false, resize: false, mounts: false });
    expect(new CliProvider({ provider: "e2b" }).name).toBe("e2b");
  });
});

testProvider("local via the compiled binary", async () => new CliProvider({ provider: "local" }));

describe("docker via the compiled binary (engine check)", () => {
  // Deliberately no skip: an unreachable engine fails loudly, saying what to run.
  test("a Docker Engine answers and the test images exist", requireEngine, 30_000);
});
testProvider("docker via the compiled binary", async () => new CliProvider({ provider: "docker" }), { image: "sandboxes-test/busybox" });

testProvider("e2b (fake) via the compiled binary", async () => new CliProvider({ provider: "e2b", env: e2b.env() }));

testProvider("daytona (fake) via the compiled binary", async () =>
  new CliProvider({ provider: "daytona", env: { DAYTONA_API_KEY: "cli-conformance-key", DAYTONA_API_URL: daytona.apiUrl } }),
);

testProvider("modal (fake) via the compiled binary", async () =>
  new CliProvider({ provider: "modal", env: { MODAL_SERVER_URL: modal.url, MODAL_TOKEN_ID: "ak-cli", MODAL_TOKEN_SECRET: "as-cli" } }),
);

describe("the fakes after the suites", () => {
  // Runs after each suite's afterAll destroyed what it created, through `sandboxes destroy`.
  test("no sandbox was left behind on any fake, and the binary really used them", () => {
    expect([...e2b.sandboxes.keys()]).toEqual([]);
    expect(e2b.creates.length).toBeGreaterThanOrEqual(2);
    expect(daytona.live()).toEqual([]);
    expect(daytona.requests.filter((r) => r === "POST /api/sandbox").length).toBeGreaterThanOrEqual(2);
    expect(modal.running().map((s) => s.id)).toEqual([]);
    expect(modal.sandboxes.size).toBeGreaterThanOrEqual(2);
  });
});
