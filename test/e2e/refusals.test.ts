/**
 * Fakes that say no, as their services do, and what the compiled binary makes of it: a wrong
 * key gets the service's own status and body, and `sandboxes` answers with one line on stderr,
 * its documented exit code, and no sandbox left on the service.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FakeDaytona } from "../fakes/daytona/server";
import { startFakeModal, Status } from "../fakes/modal/server";
import { startFakeCloudflare } from "../fakes/cloudflare/server";
import { startFakeE2B } from "../fakes/e2b/server";
import { startFakeHopx } from "../fakes/hopx/server";
import { startFakeSprites } from "../fakes/sprites/server";
import { startFakeVercel } from "../fakes/vercel/server";
import { ensureBinary } from "../conformance/cli-provider";
import { matchesLine } from "../fakes/faults";
import { cli, freshEnv } from "../helpers";

interface Refusing {
  /** Variables that point the binary at the fake with a key it does not accept. */
  wrongKey: Record<string, string>;
  /** The status the service answers a wrong key with, as our message names it (an HTTP status, or a gRPC one for Modal). */
  status: number | string;
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
  modal: async () => {
    const fake = await startFakeModal();
    return {
      wrongKey: { ...fake.env(), MODAL_TOKEN_SECRET: "as-wrong" },
      status: "UNAUTHENTICATED",
      held: () => fake.running().length,
      created: () => fake.calls.filter((call) => call.method === "SandboxCreateV2").length,
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

/**
 * A service that rate-limits: a 429 with `Retry-After` on create or on exec. The binary waits it
 * out (up to MAX_RETRY_AFTER_MS, 30 s) and goes on, making one sandbox and running the command
 * once; a longer wait is one line and no sandbox.
 */
interface RateLimited {
  env: Record<string, string>;
  /** The refusal as our one line names it: 429, or gRPC's RESOURCE_EXHAUSTED for Modal. */
  refusal: string;
  /** Whether the client sees the wait the refusal asked for, on create and on exec. */
  seesWait: { create: boolean; exec: boolean };
  /** The request line of a create, and of the exec that starts a command (a Faults pattern). */
  createLine: string;
  execLine: string;
  /** Answers the next `times` requests matching `line` with 429 and this Retry-After (Modal: RESOURCE_EXHAUSTED, gRPC has no Retry-After). */
  limit(line: string, retryAfter: string, times: number): void;
  arrivals(): ReadonlyArray<{ line: string; at: number }>;
  held(): number;
  created(): number;
  /** How many commands that reached the fake's sandboxes contain `marker`. */
  ran(marker: string): number;
  close(): Promise<void>;
}

/** What every fake built on test/fakes/faults.ts shares: its env, 429s with Retry-After, its arrivals, close. */
interface HttpFake {
  env(): Record<string, string>;
  fault(fault: { match: string; kind: "status"; status: number; retryAfter: string; times: number }): void;
  arrivals: ReadonlyArray<{ line: string; at: number }>;
  close(): Promise<void>;
}

function httpLimiter(
  fake: HttpFake,
  lines: { createLine: string; execLine: string },
  counts: Pick<RateLimited, "held" | "created" | "ran">,
): RateLimited {
  return {
    refusal: "429",
    seesWait: { create: true, exec: true },
    env: fake.env(),
    ...lines,
    limit: (match, retryAfter, times) => fake.fault({ match, kind: "status", status: 429, retryAfter, times }),
    arrivals: () => fake.arrivals,
    ...counts,
    close: () => fake.close(),
  };
}

const limiters: Record<string, () => Promise<RateLimited>> = {
  e2b: async () => {
    const fake = await startFakeE2B();
    return httpLimiter(fake, { createLine: "POST /v2/sandboxes", execLine: "POST /process.Process/Start" }, {
      held: () => fake.sandboxes.size,
      created: () => fake.creates.length,
      ran: (marker) => fake.started.filter((argv) => argv.join(" ").includes(marker)).length,
    });
  },
  sprites: async () => {
    const fake = await startFakeSprites();
    return {
      refusal: "429",
      seesWait: { create: true, exec: false },
      env: fake.env(),
      createLine: "POST /v1/sprites",
      execLine: "GET /v1/sprites/*/exec",
      limit: (match, retryAfter, times) => fake.fault({ match, kind: "status", status: 429, retryAfter, times }),
      arrivals: () => fake.arrivals,
      held: () => fake.sprites.size,
      created: () => fake.creates.length,
      ran: (marker) => fake.execs.filter((query) => [...query.values()].some((value) => value.includes(marker))).length,
      close: () => fake.close(),
    };
  },
  hopx: async () => {
    const fake = await startFakeHopx();
    return httpLimiter(fake, { createLine: "POST /v1/sandboxes", execLine: "POST /commands/run" }, {
      held: () => fake.sandboxes.size,
      created: () => fake.creates.length,
      ran: (marker) => fake.commands.filter((body) => JSON.stringify(body).includes(marker)).length,
    });
  },
  vercel: async () => {
    const fake = await startFakeVercel();
    return httpLimiter(fake, { createLine: "POST /v*/sandboxes", execLine: "POST /v2/sandboxes/sessions/*/cmd" }, {
      held: () => fake.sandboxes.size,
      created: () => fake.creates.length,
      ran: (marker) => fake.commands.filter((body) => JSON.stringify(body).includes(marker)).length,
    });
  },
  cloudflare: async () => {
    const fake = await startFakeCloudflare();
    return httpLimiter(fake, { createLine: "POST /v1/sandbox", execLine: "POST /v1/sandbox/*/exec" }, {
      held: () => fake.live().length,
      created: () => fake.issued.length,
      ran: (marker) => fake.execs.filter((exec) => exec.argv.join(" ").includes(marker)).length,
    });
  },
  daytona: async () => {
    const fake = new FakeDaytona({ apiKey: "right-key" }).start();
    return {
      refusal: "429",
      seesWait: { create: true, exec: true },
      env: { DAYTONA_API_KEY: "right-key", DAYTONA_API_URL: fake.apiUrl },
      createLine: "POST /api/sandbox",
      execLine: "POST */process/session/*/exec",
      limit: (match, retryAfter, times) => fake.inject({ match: { test: (line: string) => matchesLine(match, line) } as RegExp, status: 429, retryAfter, times }),
      arrivals: () => fake.arrivals,
      held: () => fake.live().length,
      created: () => fake.created.length,
      ran: (marker) => fake.commands.filter((line) => line.includes(marker)).length,
      close: () => fake.stop(),
    };
  },
  modal: async () => {
    const fake = await startFakeModal();
    return {
      env: fake.env(),
      refusal: "RESOURCE_EXHAUSTED",
      seesWait: { create: false, exec: false },
      createLine: "SandboxCreateV2",
      execLine: "TaskExecStart",
      limit: (method, _retryAfter, times) => void fake.faults.push({ method, code: Status.RESOURCE_EXHAUSTED, times }),
      arrivals: () => fake.calls.map((call) => ({ line: call.method, at: call.at })),
      held: () => fake.running().length,
      created: () => fake.sandboxes.size,
      ran: (marker) => fake.started.filter((argv) => argv.join(" ").includes(marker)).length,
      close: () => fake.stop(),
    };
  },
};

/**
 * Where the client cannot see the wait, it backs off instead: Sprites' exec is a WebSocket upgrade
 * (Bun's WebSocket hides a refused upgrade's status and headers), and gRPC has no Retry-After.
 * E2B's SDK reads Retry-After on create itself, and beyond its own deadline throws a
 * RateLimitError without it, so our line cannot name the wait.
 */
const createHidesRetryAfter = new Set(["e2b", "modal"]);

/** How many requests matched `line`, and the time between the first two (-1 with fewer). */
function afterWait(arrivals: ReadonlyArray<{ line: string; at: number }>, line: string): { tries: number; waitedMs: number } {
  const times = arrivals.filter((a) => matchesLine(line, a.line)).map((a) => a.at);
  return { tries: times.length, waitedMs: times.length >= 2 ? times[1]! - times[0]! : -1 };
}

for (const [provider, start] of Object.entries(limiters)) {
  describe(`${provider} (fake) rate-limits (429 with Retry-After; gRPC RESOURCE_EXHAUSTED for Modal)`, () => {
    let fake: RateLimited;
    beforeAll(async () => void (fake = await start()), 30_000);
    afterAll(() => fake?.close());

    test("a 429 on create is waited out: the run succeeds with one sandbox made and none left", async () => {
      const before = fake.arrivals().length;
      const madeBefore = fake.created();
      fake.limit(fake.createLine, "1", 1);
      const { env } = freshEnv(fake.env);
      const result = await cli(["run", "-p", provider, "echo made-once"], { env });
      expect(result.stderr).toBe("");
      expect(result.stdout).toBe("made-once\n");
      expect(result.code).toBe(0);
      expect(fake.created() - madeBefore).toBe(1);
      expect(fake.held()).toBe(0);
      // The second create came after the second the refusal asked for.
      const { tries, waitedMs } = afterWait(fake.arrivals().slice(before), fake.createLine);
      expect(tries).toBe(2);
      if (fake.seesWait.create) expect(waitedMs).toBeGreaterThanOrEqual(1000);
    }, 60_000);

    test("a 429 on exec is waited out: the command runs exactly once", async () => {
      const before = fake.arrivals().length;
      fake.limit(fake.execLine, "1", 1);
      const { env } = freshEnv(fake.env);
      const result = await cli(["run", "-p", provider, "echo ran-once"], { env });
      expect(result.stderr).toBe("");
      expect(result.stdout).toBe("ran-once\n");
      expect(result.code).toBe(0);
      expect(fake.ran("ran-once")).toBe(1);
      expect(fake.held()).toBe(0);
      const { tries, waitedMs } = afterWait(fake.arrivals().slice(before), fake.execLine);
      expect(tries).toBeGreaterThanOrEqual(2);
      if (fake.seesWait.exec) expect(waitedMs).toBeGreaterThanOrEqual(1000);
    }, 60_000);

    test("a Retry-After beyond 30 s (Modal: refusals past the retry budget) on create: one line, naming the wait where the client sees it, exit 125, no sandbox", async () => {
      fake.limit(fake.createLine, "3600", 8);
      const { env } = freshEnv(fake.env);
      const result = await cli(["run", "-p", provider, "echo never"], { env });
      expect(result.code).toBe(125);
      expect(result.stdout).toBe("");
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(`sandboxes: ${provider}`);
      expect(lines[0]).toContain(fake.refusal);
      if (!createHidesRetryAfter.has(provider)) expect(lines[0]).toContain("wait 3600 s");
      expect(fake.held()).toBe(0);
    }, 60_000);
  });
}

/**
 * A sandbox on its way down gets a clear answer. Vercel: a session whose timeout has just passed
 * is "stopping", and calls on it get the documented 422 sandbox_stopping (sandbox.js:23-37); the
 * SDK, and our client, answer that by resuming and asking once more (sandbox.js:613-624).
 */
describe("vercel (fake): a stopping sandbox", () => {
  let fake: Awaited<ReturnType<typeof startFakeVercel>>;
  beforeAll(async () => void (fake = await startFakeVercel()), 30_000);
  afterAll(() => fake?.close());

  test("run: a command that meets 422 sandbox_stopping runs once on a resumed session", async () => {
    const { env } = freshEnv(fake.env());
    const before = fake.requests.length;
    fake.stopAtNextCommand();
    const result = await cli(["run", "-p", "vercel", "echo after-stopping"], { env });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("after-stopping\n");
    expect(result.code).toBe(0);
    expect(fake.commands.filter((body) => JSON.stringify(body).includes("after-stopping"))).toHaveLength(1);
    // The first command reached a stopping session (422), the second the resumed one.
    const calls = fake.requests.slice(before).map((line, i) => `${line}${fake.queries[before + i]!.get("resume") === "true" ? "?resume" : ""}`);
    const commands = calls.flatMap((line, i) => (/\/cmd$/.test(line) ? [i] : []));
    expect(commands).toHaveLength(2);
    expect(calls.slice(commands[0], commands[1]).some((line) => line.endsWith("?resume"))).toBe(true);
    expect(fake.sandboxes.size).toBe(0);
  }, 60_000);

  test("exec, list and destroy of a stopping sandbox: it runs on a resumed session, lists as stopped, and goes", async () => {
    let stoppingSession: string | undefined;
    await restThenWake("vercel", fake.env(), {
      rest: (id) => ((stoppingSession = fake.sandboxes.get(id)!.session.id), fake.beginStopping(id)),
      listsAs: "stopped",
      awake: (id) => fake.sandboxes.get(id)!.session.id !== stoppingSession,
      gone: (id) => !fake.sandboxes.has(id),
    });
  }, 60_000);
});

/**
 * Through the binary: keeps a sandbox, puts it to rest on the fake (`rest`: paused, sleeping,
 * stopping), then checks that list shows it as `listsAs`, that exec wakes it and runs, and that
 * destroy, with it at rest again, removes it.
 */
async function restThenWake(provider: string, credentials: Record<string, string>, fake: { rest(id: string): void; listsAs: string; awake(id: string): boolean; gone(id: string): boolean }): Promise<void> {
  const { env } = freshEnv(credentials);
  const made = await cli(["run", "-p", provider, "--keep", "--json", "true"], { env });
  expect(made.code).toBe(0);
  const id = (JSON.parse(made.stdout) as { sandbox_id: string }).sandbox_id;
  fake.rest(id);
  const listed = await cli(["list", "-p", provider, "--json"], { env });
  expect(listed.code).toBe(0);
  expect((JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; state: string }> }).sandboxes.find((s) => s.id === id)?.state).toBe(fake.listsAs);
  const exec = await cli(["exec", id, "echo", "woke"], { env });
  expect(exec.stderr).toBe("");
  expect(exec.stdout).toBe("woke\n");
  expect(exec.code).toBe(0);
  expect(fake.awake(id)).toBe(true);
  fake.rest(id);
  const destroyed = await cli(["destroy", id], { env });
  expect(destroyed.code).toBe(0);
  expect(fake.gone(id)).toBe(true);
}

/**
 * E2B: a paused sandbox lists as stopped, and connecting to it (which exec does) resumes it, as
 * the real API does; envd does not answer while it is paused. Destroy removes it all the same.
 */
describe("e2b (fake): a paused sandbox", () => {
  let fake: Awaited<ReturnType<typeof startFakeE2B>>;
  beforeAll(async () => void (fake = await startFakeE2B()), 30_000);
  afterAll(() => fake?.close());

  test("list shows it stopped, exec resumes it and runs, destroy removes it", async () => {
    await restThenWake("e2b", fake.env(), {
      rest: (id) => fake.pause(id),
      listsAs: "stopped",
      awake: (id) => fake.sandboxes.get(id)!.state === "running",
      gone: (id) => !fake.sandboxes.has(id),
    });
  }, 60_000);
});

/** Sprites: an idle sprite goes to sleep (cold); it lists as running, for the next exec wakes it, as the real API does. */
describe("sprites (fake): a sleeping sprite", () => {
  let fake: Awaited<ReturnType<typeof startFakeSprites>>;
  beforeAll(async () => void (fake = await startFakeSprites()), 30_000);
  afterAll(() => fake?.close());

  test("list shows it running, exec wakes it and runs, destroy removes it", async () => {
    await restThenWake("sprites", fake.env(), {
      rest: (id) => fake.sleep(id),
      listsAs: "running",
      awake: (id) => !fake.sprites.get(id)!.cold,
      gone: (id) => !fake.sprites.has(id),
    });
  }, 60_000);
});

/** Daytona: a deleted sandbox stays "destroying" a while; it is gone for exec, list and destroy alike. */
describe("daytona (fake): a sandbox being destroyed", () => {
  let fake: FakeDaytona;
  beforeAll(() => void (fake = new FakeDaytona({ apiKey: "right-key", lingerOnDelete: true }).start()));
  afterAll(() => fake?.stop());

  test("destroy leaves it destroying; exec is one line and 125, list leaves it out, a second destroy is still fine", async () => {
    const { env } = freshEnv({ DAYTONA_API_KEY: "right-key", DAYTONA_API_URL: fake.apiUrl });
    const made = await cli(["run", "-p", "daytona", "--keep", "--json", "true"], { env });
    expect(made.code).toBe(0);
    const id = (JSON.parse(made.stdout) as { sandbox_id: string }).sandbox_id;
    expect((await cli(["destroy", id], { env })).code).toBe(0);
    expect(fake.sandboxes.get(id)?.state).toBe("destroying");
    const exec = await cli(["exec", id, "echo", "never"], { env });
    expect(exec.code).toBe(125);
    expect(exec.stdout).toBe("");
    expect(exec.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(exec.stderr).toContain(id);
    const listed = await cli(["list", "-p", "daytona", "--json"], { env });
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id)).not.toContain(id);
    const again = await cli(["destroy", id], { env });
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("already destroyed");
  }, 60_000);
});
