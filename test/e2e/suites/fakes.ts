/**
 * Each cloud provider's fake, seen the same way by the shared CLI suites (faults.ts, signals.ts,
 * credentials.ts): how to start it, what the binary's environment is, what the fake has seen and
 * holds, how to inject each kind of fault, and what the provider says about its credentials.
 * Every fact a suite checks comes from the fake's own records or from the binary's output.
 *
 * A hook a provider cannot offer is left out; the suites skip its cases with `test.skipIf`.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { FakeDaytona } from "../../fakes/daytona/server";
import { type FakeCloudflare, startFakeCloudflare } from "../../fakes/cloudflare/server";
import { type FakeE2B, startFakeE2B } from "../../fakes/e2b/server";
import { type FakeHopx, startFakeHopx } from "../../fakes/hopx/server";
import { type FakeModal, startFakeModal, Status } from "../../fakes/modal/server";
import { type FakeSprites, startFakeSprites } from "../../fakes/sprites/server";
import { type FakeVercel, startFakeVercel } from "../../fakes/vercel/server";
import type { Fault } from "../../fakes/faults";
import { type CliEnv, machines } from "../../helpers";
import { buildBinary } from "../_e2b-helpers";
import type { Capabilities } from "../../../src/providers/types";
import { e2bDescriptor } from "../../../src/providers/e2b";
import { daytonaDescriptor } from "../../../src/providers/daytona";
import { modalDescriptor } from "../../../src/providers/modal";
import { spritesDescriptor } from "../../../src/providers/sprites";
import { hopxDescriptor } from "../../../src/providers/hopx";
import { cloudflareDescriptor } from "../../../src/providers/cloudflare";
import { vercelDescriptor } from "../../../src/providers/vercel";

export type CloudName = "e2b" | "daytona" | "modal" | "sprites" | "hopx" | "cloudflare" | "vercel";

/** Ways to make the fake fail; each is used up by the requests it matches. */
export interface FaultHooks {
  /** The next `times` creates fail before any work is done (a 503, or what the service sends instead). */
  createFails(times: number): void;
  /** What the one line says once the retry budget for create is spent: its start and the status it names. */
  budget: { firstLine: string; status: string };
  /** Named ways to lose the answer of one create that did its work; the provider must find it again. */
  loseCreateAnswer?: Record<string, () => void>;
  /** Every create attempt does its work and then loses its answer. */
  loseEveryCreateAnswer?: () => void;
  /** true: a lost create answer is found again; false: it is refused with one line saying to look. */
  findsLostCreate?: boolean;
  /** The next lists get a 429 and a 500 (or the service's equivalents). */
  listFails?: () => void;
  /** Every list fails; the one line `list` then prints starts with `firstLine` and names `status`. */
  listAlwaysFails?: { inject(): void; firstLine: string; status: string };
  /** A transient failure on the way to running a command in sandbox `id`. */
  execFails?: (id: string) => void;
  /** A 503 on deleting sandbox `id`. */
  destroyFails?: (id: string) => void;
  /** A 503 on the next file upload into sandbox `id`, for providers that retry one. */
  uploadFails?: (id: string) => void;
  /** The next create answers only after a while (within the request timeout). */
  slowCreate?: () => void;
}

/** What the provider says about its credentials, and where they can come from. */
export interface CredentialFacts {
  /** Extra environment that points at the fake without any credential (URLs only). */
  urls(): Record<string, string>;
  /** The environment with every credential of `env` but one, for "not configured" (default: urls()). */
  withoutKey?: () => Record<string, string>;
  /** The one line `run -p NAME` prints without credentials. */
  runMissing: string;
  /** `missing` in `providers --json` on a machine with nothing configured. */
  providersMissing: string;
  /** `source` in `providers --json` when the environment configures it. */
  envSource: string;
  /** `source` in `providers --json` when config.toml configures it (default "config.toml"). */
  configSource?: string;
  /** config.toml text that configures the provider on its own (with urls() in the environment). */
  configToml(): string;
  /** Provider-specific facts of the run configured by config.toml (template, token sent). */
  afterConfigRun?: () => void;
  /** A wrong credential: the environment, and what the one line says. */
  wrongKey?: { env(): Record<string, string>; firstLine: RegExp; contains: string[] };
}

export interface CloudFake {
  name: CloudName;
  /** The provider's declared capabilities (its descriptor: the one source of truth). */
  capabilities: Capabilities;
  /** Starts the fake (in the suite's beforeAll). */
  start(): Promise<void>;
  /** The binary's environment: a fresh machine with the fake's credentials. */
  env: Record<string, string>;
  /** Another fresh machine (its own HOME, config and state), with `extra` in its environment. */
  machine(extra?: Record<string, string>): CliEnv;
  /** Sandboxes that exist on the fake now. */
  live(): number;
  /** Sandboxes the fake has made, ever. */
  made(): number;
  /** Create requests that reached the fake, failed ones included. */
  createAttempts(): number;
  /** List requests that reached the fake, failed ones included. */
  lists(): number;
  /** Requests (or calls) the fake has seen, of any kind. */
  requests(): number;
  clearFaults(): void;
  close(): Promise<void>;
  faults: FaultHooks;
  credentials: CredentialFacts;
}

/** A provider's fake for one suite, not started yet: the suite starts and closes it. */
export type NewFake = () => CloudFake;

/** In a suite's describe: builds the binary and starts the fake before its tests, closes it after. */
export function useFake(fake: { start(): Promise<void>; close(): Promise<void> }): void {
  beforeAll(async () => {
    buildBinary();
    await fake.start();
  }, 60_000);
  afterAll(() => fake.close());
}

/** What every fake built on test/fakes/faults.ts has. */
interface HttpFake {
  requests: string[];
  fault(fault: Fault): void;
  clearFaults(): void;
}

/**
 * The parts of a driver that are the same for every fake built on test/fakes/faults.ts: counts by
 * request line, and faults on its create, list and delete routes. `fake` is read when called.
 */
function http(fake: () => HttpFake, routes: { create: string; list?: string; destroy(id: string): string }) {
  const count = (line: string) => fake().requests.filter((r) => r === line).length;
  const status = (match: string, code: number, times = 1) => fake().fault({ match, kind: "status", status: code, times });
  return {
    counts: {
      createAttempts: () => count(routes.create),
      lists: () => (routes.list ? count(routes.list) : 0),
      requests: () => fake().requests.length,
      clearFaults: () => fake().clearFaults(),
    },
    createFails: (times: number) => status(routes.create, 503, times),
    slowCreate: () => fake().fault({ match: routes.create, kind: "slow", delayMs: 1500 }),
    loseCreateAnswer: { "dropped connection": () => fake().fault({ match: routes.create, kind: "drop-after", times: 1 }) },
    loseEveryCreateAnswer: () => fake().fault({ match: routes.create, kind: "drop-after", times: 1000 }),
    listFails: () => (status(routes.list!, 429), status(routes.list!, 500)),
    listAlwaysFails: (name: string) => ({ inject: () => status(routes.list!, 500, 1000), firstLine: `sandboxes: ${name}: `, status: "500" }),
    destroyFails: (id: string) => status(routes.destroy(id), 503),
    status,
  };
}

function e2b(): CloudFake {
  let fake!: FakeE2B;
  let env: Record<string, string> = {};
  const { machine, removeAll } = machines();
  const h = http(() => fake, { create: "POST /v2/sandboxes", list: "GET /v2/sandboxes", destroy: (id) => `DELETE /sandboxes/${id}` });
  const urls = () => ({ E2B_API_URL: fake.url, E2B_SANDBOX_URL: fake.url });
  return {
    name: "e2b",
    capabilities: e2bDescriptor.capabilities,
    async start() {
      fake = await startFakeE2B({ pageSize: 2, templates: ["base", "custom-template"] });
      env = machine(fake.env()).env;
    },
    get env() {
      return env;
    },
    machine,
    live: () => fake.sandboxes.size,
    made: () => fake.creates.length,
    ...h.counts,
    close: async () => (await fake.close(), removeAll()),
    faults: {
      createFails: h.createFails,
      budget: { firstLine: "sandboxes: e2b: creating a sandbox", status: "503" },
      loseCreateAnswer: h.loseCreateAnswer,
      loseEveryCreateAnswer: h.loseEveryCreateAnswer,
      findsLostCreate: true,
      listFails: h.listFails,
      listAlwaysFails: h.listAlwaysFails("e2b"),
      execFails: (id) => fake.fault({ match: `POST /v2/sandboxes/${id}/connect`, kind: "drop", times: 1 }),
      destroyFails: h.destroyFails,
      uploadFails: () => h.status("POST /files", 503),
      slowCreate: h.slowCreate,
    },
    credentials: {
      urls,
      runMissing: "sandboxes: provider e2b is not configured: set E2B_API_KEY (or api_key under [providers.e2b] in config.toml)",
      providersMissing: "set E2B_API_KEY (or api_key under [providers.e2b] in config.toml)",
      envSource: "E2B_API_KEY",
      configToml: () => `[providers.e2b]\napi_key = "${fake.env().E2B_API_KEY}"\ntemplate = "custom-template"\n`,
      afterConfigRun: () => expect(fake.creates.at(-1)?.templateID).toBe("custom-template"),
      wrongKey: { env: () => ({ ...urls(), E2B_API_KEY: "e2b_wrong" }), firstLine: /^sandboxes: e2b: /, contains: ["401", "E2B_API_KEY"] },
    },
  };
}

function daytona(): CloudFake {
  let fake!: FakeDaytona;
  let env: Record<string, string> = {};
  const { machine, removeAll } = machines();
  const create = "POST /api/sandbox";
  return {
    name: "daytona",
    capabilities: daytonaDescriptor.capabilities,
    async start() {
      fake = new FakeDaytona({ apiKey: "dummy", pageSize: 2 });
      fake.start();
      env = machine({ DAYTONA_API_KEY: "dummy", DAYTONA_API_URL: fake.apiUrl }).env;
    },
    get env() {
      return env;
    },
    machine,
    live: () => fake.live().length,
    made: () => fake.created.length,
    createAttempts: () => fake.requests.filter((r) => r === create).length,
    lists: () => fake.requests.filter((r) => r === "GET /api/sandbox").length,
    requests: () => fake.requests.length,
    clearFaults: () => fake.clearFaults(),
    close: async () => (await fake.stop(), removeAll()),
    faults: {
      // Daytona answers an overloaded create with 503 or 429: one of them is a 429.
      createFails: (times) => {
        fake.inject({ match: create, status: 503, times: times - 1 });
        fake.inject({ match: create, status: 429, times: 1 });
      },
      budget: { firstLine: "sandboxes: daytona: create sandbox failed: Service Unavailable (status 503): ", status: "503" },
      loseCreateAnswer: {
        "500 after the work": () => fake.inject({ match: create, afterHandling: true, status: 500, times: 1 }),
        "dropped connection after the work": () => fake.inject({ match: create, afterHandling: true, drop: true, times: 1 }),
      },
      findsLostCreate: true,
      listFails: () => (fake.inject({ match: "GET /api/sandbox", status: 429, times: 1 }), fake.inject({ match: "GET /api/sandbox", status: 500, times: 1 })),
      listAlwaysFails: { inject: () => fake.inject({ match: "GET /api/sandbox", status: 500 }), firstLine: "sandboxes: daytona: list sandboxes failed: Internal Server Error (status 500)", status: "500" },
      // The lookup, the session and the command's own calls each fail once; the lookup is also slow once.
      execFails: (id) => {
        fake.inject({ match: `GET /api/sandbox/${id}`, status: 502, times: 1 });
        fake.inject({ match: `GET /api/sandbox/${id}`, delayMs: 1500, times: 1 });
        fake.inject({ match: `POST /toolbox/${id}/process/session`, status: 500, times: 1 });
        fake.inject({ match: new RegExp(`^POST /toolbox/${id}/process/session/[^/]+/exec$`), status: 503, times: 1 });
        fake.inject({ match: new RegExp(`^GET /toolbox/${id}/process/session/[^/]+/command/[^/]+$`), status: 500, times: 1 });
      },
      uploadFails: (id) => fake.inject({ match: `POST /toolbox/${id}/files/bulk-upload`, status: 503, times: 1 }),
      destroyFails: (id) => fake.inject({ match: `DELETE /api/sandbox/${id}`, status: 503, times: 1 }),
    },
    credentials: {
      urls: () => ({ DAYTONA_API_URL: fake.apiUrl }),
      runMissing: "sandboxes: provider daytona is not configured: set DAYTONA_API_KEY (or api_key under [providers.daytona] in config.toml)",
      providersMissing: "set DAYTONA_API_KEY (or api_key under [providers.daytona] in config.toml)",
      envSource: "DAYTONA_API_KEY",
      configToml: () => `[providers.daytona]\napi_key = "dummy"\napi_url = "${fake.apiUrl}"\n`,
      wrongKey: {
        env: () => ({ DAYTONA_API_URL: fake.apiUrl, DAYTONA_API_KEY: "wrong" }),
        firstLine: /^sandboxes: daytona: create sandbox failed: Invalid credentials \(status 401\): check DAYTONA_API_KEY/,
        contains: ["401", "DAYTONA_API_KEY"],
      },
    },
  };
}

function modal(): CloudFake {
  let fake!: FakeModal;
  let env: Record<string, string> = {};
  const { machine, removeAll } = machines();
  const calls = (method: string) => fake.calls.filter((c) => c.method === method);
  const clear = () => {
    for (const fault of fake.faults) fault.times = 0;
    fake.honorIdempotencyKey = true;
  };
  return {
    name: "modal",
    capabilities: modalDescriptor.capabilities,
    async start() {
      fake = await startFakeModal({ tokenId: "ak-e2e", tokenSecret: "as-e2e" });
      env = machine(fake.env()).env;
    },
    get env() {
      return env;
    },
    machine,
    live: () => fake.running().length,
    made: () => fake.sandboxes.size,
    createAttempts: () => calls("SandboxCreateV2").length,
    lists: () => calls("SandboxListV2").length,
    requests: () => fake.calls.length,
    clearFaults: clear,
    close: async () => (clear(), await fake.stop(), removeAll()),
    faults: {
      createFails: (times) => fake.faults.push({ method: "SandboxCreateV2", code: Status.UNAVAILABLE, times }),
      budget: { firstLine: "sandboxes: modal: create sandbox failed", status: "UNAVAILABLE" },
      loseCreateAnswer: {
        // Even on a server that ignores idempotency keys: the retry finds it by its token.
        "UNAVAILABLE after the work, idempotency keys ignored": () => {
          fake.honorIdempotencyKey = false;
          fake.faults.push({ method: "SandboxCreateV2", code: Status.UNAVAILABLE, times: 2, after: true });
        },
      },
      findsLostCreate: true,
      listFails: () => fake.faults.push({ method: "SandboxListV2", code: Status.RESOURCE_EXHAUSTED, times: 2 }),
      listAlwaysFails: {
        inject: () => fake.faults.push({ method: "SandboxListV2", code: Status.INTERNAL, times: 1000 }),
        firstLine: "sandboxes: modal: ",
        status: "INTERNAL",
      },
      execFails: () => fake.faults.push({ method: "TaskExecStart", code: Status.UNAVAILABLE, times: 1 }),
      destroyFails: () => fake.faults.push({ method: "SandboxTerminateV2", code: Status.UNAVAILABLE, times: 1 }),
      slowCreate: () => fake.faults.push({ method: "SandboxCreateV2", delayMs: 1500, times: 1 }),
    },
    credentials: {
      urls: () => ({ MODAL_SERVER_URL: fake.url }),
      runMissing: "sandboxes: provider modal is not configured: set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run `modal token new`, which writes ~/.modal.toml)",
      providersMissing: "set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run `modal token new`, which writes ~/.modal.toml)",
      envSource: "MODAL_TOKEN_ID + MODAL_TOKEN_SECRET",
      configSource: "config.toml [providers.modal]",
      configToml: () => '[providers.modal]\ntoken_id = "ak-e2e"\ntoken_secret = "as-e2e"\n',
      afterConfigRun: () => expect(calls("AuthTokenGet").at(-1)?.metadata["x-modal-token-id"]).toBe("ak-e2e"),
      wrongKey: { env: () => ({ MODAL_SERVER_URL: fake.url, MODAL_TOKEN_ID: "ak-wrong", MODAL_TOKEN_SECRET: "as-wrong" }), firstLine: /^sandboxes: modal: /, contains: ["MODAL_TOKEN_ID"] },
    },
  };
}

function sprites(): CloudFake {
  let fake!: FakeSprites;
  let env: Record<string, string> = {};
  const { machine, removeAll } = machines();
  const h = http(() => fake, { create: "POST /v1/sprites", list: "GET /v1/sprites", destroy: (id) => `DELETE /v1/sprites/${id}` });
  return {
    name: "sprites",
    capabilities: spritesDescriptor.capabilities,
    async start() {
    // With a token of its own, the fake refuses any other (the wrong-key case).
  fake = await startFakeSprites({ pageSize: 2, token: "the-right-one" });
      env = machine(fake.env()).env;
    },
    get env() {
      return env;
    },
    machine,
    live: () => fake.sprites.size,
    made: () => fake.creates.length,
    ...h.counts,
    close: async () => (await fake.close(), removeAll()),
    faults: {
      createFails: h.createFails,
      budget: { firstLine: "sandboxes: sprites: creating sprite sandboxes-", status: "503" },
      loseCreateAnswer: h.loseCreateAnswer,
      loseEveryCreateAnswer: h.loseEveryCreateAnswer,
      findsLostCreate: true,
      listFails: h.listFails,
      listAlwaysFails: h.listAlwaysFails("sprites"),
      // A refused upgrade of the exec WebSocket.
      execFails: (id) => h.status(`GET /v1/sprites/${id}/exec`, 502),
      destroyFails: h.destroyFails,
      uploadFails: (id) => h.status(`PUT /v1/sprites/${id}/fs/write`, 503),
      slowCreate: h.slowCreate,
    },
    credentials: {
      urls: () => ({ SPRITES_API_URL: fake.url }),
      runMissing: "sandboxes: provider sprites is not configured: set SPRITES_TOKEN (or token under [providers.sprites] in config.toml)",
      providersMissing: "set SPRITES_TOKEN (or token under [providers.sprites] in config.toml)",
      envSource: "SPRITES_TOKEN",
      configToml: () => `[providers.sprites]\ntoken = "${fake.env().SPRITES_TOKEN}"\napi_url = "${fake.url}"\n`,
      wrongKey: { env: () => ({ SPRITES_API_URL: fake.url, SPRITES_TOKEN: "wrong" }), firstLine: /^sandboxes: sprites: the token was rejected/, contains: ["401", "SPRITES_TOKEN"] },
    },
  };
}

function hopx(): CloudFake {
  let fake!: FakeHopx;
  let env: Record<string, string> = {};
  const { machine, removeAll } = machines();
  const h = http(() => fake, { create: "POST /v1/sandboxes", list: "GET /v1/sandboxes", destroy: (id) => `DELETE /v1/sandboxes/${id}` });
  return {
    name: "hopx",
    capabilities: hopxDescriptor.capabilities,
    async start() {
      fake = await startFakeHopx({ pageSize: 2, templates: ["code-interpreter", "custom-template"] });
      env = machine(fake.env()).env;
    },
    get env() {
      return env;
    },
    machine,
    live: () => fake.sandboxes.size,
    made: () => fake.creates.length,
    ...h.counts,
    close: async () => (await fake.close(), removeAll()),
    faults: {
      createFails: h.createFails,
      budget: { firstLine: "sandboxes: hopx: creating a sandbox", status: "503" },
      // Hopx has no way to find a create again (no idempotency key, labels live on this machine).
      loseEveryCreateAnswer: h.loseEveryCreateAnswer,
      findsLostCreate: false,
      listFails: h.listFails,
      listAlwaysFails: h.listAlwaysFails("hopx"),
      // A dropped token refresh on the way to the sandbox's agent.
      execFails: (id) => fake.fault({ match: `POST /v1/sandboxes/${id}/token/refresh`, kind: "drop", times: 1 }),
      destroyFails: h.destroyFails,
      slowCreate: h.slowCreate,
    },
    credentials: {
      urls: () => ({ HOPX_API_URL: fake.url }),
      runMissing: "sandboxes: provider hopx is not configured: set HOPX_API_KEY (or api_key under [providers.hopx] in config.toml)",
      providersMissing: "set HOPX_API_KEY (or api_key under [providers.hopx] in config.toml)",
      envSource: "HOPX_API_KEY",
      configToml: () => `[providers.hopx]\napi_key = "${fake.apiKey}"\napi_url = "${fake.url}"\ntemplate = "custom-template"\n`,
      afterConfigRun: () => expect(fake.creates.at(-1)?.template_name).toBe("custom-template"),
      wrongKey: {
        env: () => ({ HOPX_API_URL: fake.url, HOPX_API_KEY: "hopx_wrong" }),
        firstLine: /^sandboxes: hopx: creating a sandbox from template "code-interpreter": the API key was rejected/,
        contains: ["check HOPX_API_KEY"],
      },
    },
  };
}

function cloudflare(): CloudFake {
  let fake!: FakeCloudflare;
  let env: Record<string, string> = {};
  const { machine, removeAll } = machines();
  // The bridge has no list: this machine's records are the list.
  const h = http(() => fake, { create: "POST /v1/sandbox", destroy: (id) => `DELETE /v1/sandbox/${id}` });
  return {
    name: "cloudflare",
    capabilities: cloudflareDescriptor.capabilities,
    async start() {
      fake = await startFakeCloudflare({ mode: "bridge" });
      env = machine(fake.env()).env;
    },
    get env() {
      return env;
    },
    machine,
    live: () => fake.live().length,
    made: () => fake.issued.length,
    ...h.counts,
    close: async () => (await fake.close(), removeAll()),
    faults: {
      createFails: h.createFails,
      budget: { firstLine: "sandboxes: cloudflare: creating a sandbox failed", status: "503" },
      // A refused exec (502 before it started) is sent again.
      execFails: (id) => h.status(`POST /v1/sandbox/${id}/exec`, 502),
      destroyFails: h.destroyFails,
      slowCreate: h.slowCreate,
    },
    credentials: {
      // The Worker's URL is the credential: nothing points at the fake without it.
      urls: () => ({}),
      withoutKey: () => ({ CLOUDFLARE_SANDBOX_API_KEY: "some-key" }),
      runMissing: "sandboxes: provider cloudflare is not configured: set CLOUDFLARE_SANDBOX_URL to your sandbox Worker's URL (or url under [providers.cloudflare] in config.toml)",
      providersMissing: "set CLOUDFLARE_SANDBOX_URL to your sandbox Worker's URL (or url under [providers.cloudflare] in config.toml)",
      envSource: "CLOUDFLARE_SANDBOX_URL",
      configToml: () => `[providers.cloudflare]\nurl = "${fake.url}"\napi_key = "${fake.env().CLOUDFLARE_SANDBOX_API_KEY}"\n`,
      wrongKey: {
        env: () => ({ CLOUDFLARE_SANDBOX_URL: fake.url, CLOUDFLARE_SANDBOX_API_KEY: "wrong" }),
        firstLine: /^sandboxes: cloudflare: the Worker refused the API key/,
        contains: ["401", "CLOUDFLARE_SANDBOX_API_KEY"],
      },
    },
  };
}

function vercel(): CloudFake {
  let fake!: FakeVercel;
  let env: Record<string, string> = {};
  const { machine, removeAll } = machines();
  const h = http(() => fake, { create: "POST /v3/sandboxes", list: "GET /v2/sandboxes", destroy: (id) => `DELETE /v2/sandboxes/${id}` });
  const create = "POST /v3/sandboxes";
  return {
    name: "vercel",
    capabilities: vercelDescriptor.capabilities,
    async start() {
      fake = await startFakeVercel({ pageSize: 2 });
      env = machine(fake.env()).env;
    },
    get env() {
      return env;
    },
    machine,
    live: () => fake.sandboxes.size,
    made: () => fake.creates.length,
    ...h.counts,
    createAttempts: () => fake.requests.filter((r) => r === create || r === "POST /v2/sandboxes").length,
    close: async () => (await fake.close(), removeAll()),
    faults: {
      createFails: h.createFails,
      budget: { firstLine: "sandboxes: vercel: creating sandbox sandboxes-", status: "503" },
      loseCreateAnswer: h.loseCreateAnswer,
      loseEveryCreateAnswer: h.loseEveryCreateAnswer,
      findsLostCreate: true,
      listFails: h.listFails,
      listAlwaysFails: h.listAlwaysFails("vercel"),
      // A 502 on starting the command in the sandbox's session.
      execFails: (id) => h.status(`POST /v2/sandboxes/sessions/${fake.sandboxes.get(id)!.session.id}/cmd`, 502),
      destroyFails: h.destroyFails,
      slowCreate: h.slowCreate,
    },
    credentials: {
      urls: () => ({ VERCEL_API_URL: fake.url }),
      // Only the token is missing: run names it alone.
      withoutKey: () => {
        const { VERCEL_TOKEN: _, ...rest } = fake.env();
        return rest;
      },
      runMissing: "sandboxes: provider vercel is not configured: set VERCEL_TOKEN (or token, team_id, project_id under [providers.vercel] in config.toml)",
      providersMissing: "set VERCEL_TOKEN, VERCEL_TEAM_ID, VERCEL_PROJECT_ID (or token, team_id, project_id under [providers.vercel] in config.toml)",
      envSource: "VERCEL_TOKEN",
      configToml: () => `[providers.vercel]\ntoken = "${fake.token}"\nteam_id = "${fake.teamId}"\nproject_id = "${fake.projectId}"\napi_url = "${fake.url}"\n`,
      wrongKey: { env: () => ({ ...fake.env(), VERCEL_TOKEN: "wrong" }), firstLine: /^sandboxes: vercel: the token was rejected/, contains: ["403", "VERCEL_TOKEN"] },
    },
  };
}

/** Every cloud provider's fake, in the order the suites run them. */
export const CLOUD_FAKES: Record<CloudName, NewFake> = { e2b, daytona, modal, sprites, hopx, cloudflare, vercel };
