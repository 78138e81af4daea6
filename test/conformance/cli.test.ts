/**
 * The shared conformance suite through the COMPILED binary: every Provider call below is a
 * `sandboxes …` process (see cli-provider.ts), for local, docker and the E2B, Daytona, Modal,
 * Sprites, Hopx, Cloudflare and Vercel fakes (the real SDKs, or for the last four our own
 * clients, inside the binary, speaking the real wire protocols to 127.0.0.1).
 * Docker needs a running engine and the offline test images (scripts/ci/docker.sh).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeDaytona } from "../fakes/daytona/server";
import { type FakeE2B, startFakeE2B } from "../fakes/e2b/server";
import { type FakeModal, startFakeModal } from "../fakes/modal/server";
import { type FakeSprites, startFakeSprites } from "../fakes/sprites/server";
import { type FakeHopx, startFakeHopx } from "../fakes/hopx/server";
import { type FakeCloudflare, startFakeCloudflare } from "../fakes/cloudflare/server";
import { type FakeVercel, startFakeVercel } from "../fakes/vercel/server";
import { requireEngine } from "../e2e/_docker-helpers";
import { archiveOf } from "../helpers";
import type { CreateSpec } from "../../src/providers/types";
import { CliProvider, cliCapabilities, ensureBinary, NO_LOOKUP_BY_ID } from "./cli-provider";
import { DAYTONA_RESOURCES_IMAGE, daytonaBackend, dockerBackend, localBackend, modalBackend, spritesBackend, vercelBackend } from "./backends";
import { testProvider } from "./suite";

let e2b: FakeE2B;
let modal: FakeModal;
let sprites: FakeSprites;
let hopx: FakeHopx;
let cloudflare: FakeCloudflare;
let vercel: FakeVercel;
const daytona = new FakeDaytona({ apiKey: "cli-conformance-key", pageSize: 2, minuteMs: 1000 });

beforeAll(async () => {
  await ensureBinary();
  // Two per page: `list` in the binary has to follow the pages to find the suite's sandboxes.
  e2b = await startFakeE2B({ pageSize: 2 });
  daytona.start();
  modal = await startFakeModal({ tokenId: "ak-cli", tokenSecret: "as-cli" });
  sprites = await startFakeSprites({ pageSize: 2 });
  hopx = await startFakeHopx({ pageSize: 2 });
  cloudflare = await startFakeCloudflare();
  vercel = await startFakeVercel({ pageSize: 2 });
}, 120_000);

afterAll(async () => {
  await Promise.all([e2b?.close(), daytona.stop(), modal?.stop(), sprites?.close(), hopx?.close(), cloudflare?.close(), vercel?.close()]);
});

describe("the CLI provider claims only what the CLI can express", () => {
  test("capabilities are the wrapped provider's, minus mounts and oneShot", async () => {
    expect(cliCapabilities("docker")).toMatchObject({ streaming: true, files: true, stdin: true, labels: true, pty: true, resize: true, mounts: false, oneShot: false });
    const provider = new CliProvider({ provider: "e2b" });
    expect(provider.name).toBe("e2b");
    expect(provider.capabilities).toEqual(cliCapabilities("e2b"));
    await provider.close();
  });
});

testProvider("local via the compiled binary", cliCapabilities("local"), async () => new CliProvider({ provider: "local" }), { noLookupById: NO_LOOKUP_BY_ID, backend: localBackend(process.env) });

/** What the suite does not ask but a CLI-backed provider must get right: quoting, errors, Ctrl-C, cp. */
describe("local via the compiled binary: argv, errors, Ctrl-C and cp details", () => {
  const provider = new CliProvider({ provider: "local" });
  let id = "";
  const exec = async (argv: string[], extra: Partial<Parameters<CliProvider["exec"]>[1]> = {}) => {
    let out = "";
    let err = "";
    const outcome = await provider.exec(id, { argv, env: {}, onStdout: (c) => (out += Buffer.from(c)), onStderr: (c) => (err += Buffer.from(c)), ...extra });
    return { ...outcome, out, err };
  };
  beforeAll(async () => {
    id = (await provider.create({ labels: { suite: "cli-extras" }, env: { ODD: `a=b 'c' "d" $HOME` } })).id;
  }, 30_000);
  afterAll(async () => {
    if (id) await provider.destroy(id);
    await provider.close();
  });

  test("argv words and env values reach the command unchanged (spaces, quotes, $, globs)", async () => {
    const result = await exec(["printf", "[%s]\\n", "a b", "it's", "$HOME", "*", ""], { env: { X: "y  z" } });
    expect(result).toMatchObject({ exitCode: 0, out: "[a b]\n[it's]\n[$HOME]\n[*]\n[]\n", err: "" });
    expect((await exec(["sh", "-c", 'printf "%s|%s" "$ODD" "$X"'], { env: { X: "y  z" } })).out).toBe(`a=b 'c' "d" $HOME|y  z`);
  }, 30_000);

  test("a program's own exit 124 and 125 pass through; exec in an unknown sandbox rejects naming it", async () => {
    expect(await exec(["sh", "-c", "exit 124"])).toMatchObject({ exitCode: 124, timedOut: false });
    expect(await exec(["sh", "-c", "exit 125"])).toMatchObject({ exitCode: 125, timedOut: false });
    const unknown = provider.exec("local-000000000000", { argv: ["true"], env: {}, onStdout: () => {}, onStderr: () => {} });
    await expect(unknown).rejects.toThrow('no sandbox "local-000000000000" on local');
  }, 30_000);

  test("an aborted exec (Ctrl-C) stops the command and returns 130", async () => {
    const controller = new AbortController();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const pending = exec(["sh", "-c", "echo up; sleep 3017; echo survived"], { signal: controller.signal, onStdout: () => started() });
    await running;
    controller.abort("SIGINT");
    expect((await pending).exitCode).toBe(130);
    const after = await exec(["ps", "-eo", "args"]);
    expect(after.out).toContain("ps -eo args");
    expect(after.out).not.toContain("sleep 3017");
  }, 30_000);

  test("putArchive: several top-level entries into a new directory with spaces; getArchive of a directory", async () => {
    const tar = await new Bun.Archive({ "a b/x.txt": "x\n", "top.txt": "t\n" }).blob();
    await provider.putArchive(id, "/tmp/cli extras/new", tar);
    const listing = await exec(["sh", "-c", "cd '/tmp/cli extras/new' && find . | LC_ALL=C sort && cat 'a b/x.txt' top.txt"]);
    expect(listing.out).toBe(".\n./a b\n./a b/x.txt\n./top.txt\nx\nt\n");
    const files = await new Bun.Archive(await archiveOf(provider, id, "/tmp/cli extras/new")).files();
    expect([...files.keys()].sort()).toEqual(["new/a b/x.txt", "new/top.txt"]);
    await expect(archiveOf(provider, id, "/no/such/file")).rejects.toThrow("cannot read /no/such/file");
  }, 30_000);
});

describe("docker via the compiled binary (engine check)", () => {
  // Deliberately no skip: an unreachable engine fails loudly, saying what to run.
  test("a Docker Engine answers and the test images exist", requireEngine, 30_000);
});
testProvider("docker via the compiled binary", cliCapabilities("docker"), async () => new CliProvider({ provider: "docker" }), { image: "sandboxes-test/busybox", backend: dockerBackend, noLookupById: NO_LOOKUP_BY_ID });

testProvider("e2b (fake) via the compiled binary", cliCapabilities("e2b"), async () => new CliProvider({ provider: "e2b", env: e2b.env() }), { noLookupById: NO_LOOKUP_BY_ID });

testProvider("daytona (fake) via the compiled binary", cliCapabilities("daytona"), async () =>
  new CliProvider({ provider: "daytona", env: { DAYTONA_API_KEY: "cli-conformance-key", DAYTONA_API_URL: daytona.apiUrl } }),
  { noLookupById: NO_LOOKUP_BY_ID, backend: daytonaBackend(() => daytona), resourcesImage: DAYTONA_RESOURCES_IMAGE },
);

testProvider("modal (fake) via the compiled binary", cliCapabilities("modal"), async () =>
  new CliProvider({ provider: "modal", env: { MODAL_SERVER_URL: modal.url, MODAL_TOKEN_ID: "ak-cli", MODAL_TOKEN_SECRET: "as-cli" } }),
  { noLookupById: NO_LOOKUP_BY_ID, backend: modalBackend(() => modal) },
);

testProvider("sprites (fake) via the compiled binary", cliCapabilities("sprites"), async () => new CliProvider({ provider: "sprites", env: sprites.env() }), {
  noLookupById: NO_LOOKUP_BY_ID,
  backend: spritesBackend(() => sprites),
});
testProvider("hopx (fake) via the compiled binary", cliCapabilities("hopx"), async () => new CliProvider({ provider: "hopx", env: hopx.env() }), { noLookupById: NO_LOOKUP_BY_ID });
testProvider("cloudflare (fake Worker) via the compiled binary", cliCapabilities("cloudflare"), async () => new CliProvider({ provider: "cloudflare", env: cloudflare.env() }), { noLookupById: NO_LOOKUP_BY_ID });
testProvider("vercel (fake) via the compiled binary", cliCapabilities("vercel"), async () => new CliProvider({ provider: "vercel", env: vercel.env() }), {
  noLookupById: NO_LOOKUP_BY_ID,
  backend: vercelBackend(() => vercel),
});

/** `size` bytes of 64 KiB of noise, repeated: gzip's window (32 KiB) cannot shrink it. */
function noise(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  crypto.getRandomValues(bytes.subarray(0, 65536));
  for (let at = 65536; at < size; at *= 2) bytes.copyWithin(at, 0, at);
  return bytes;
}

/**
 * docs/usage.md: what goes into a sandbox is never held whole, so its size is not the CLI's.
 *  - cp: streamed, sent in parts (Cloudflare: 16 MiB each, from files of ours), or written to a
 *    file in TMPDIR first (Hopx, Vercel: their APIs take a file as one body).
 *  - stdin: streamed, fed in small files (Hopx), or written to a file of ours first where an API
 *    takes no stdin (Daytona, Vercel). Cloudflare takes it as one file of at most 32 MiB and
 *    refuses more once that much is read.
 * Through the binary, for every provider, 160 MiB each way: the CLI's peak grows by less than
 * 96 MiB over a one-byte copy's or stdin's (by 0-65 MB, whatever the size: the streams' buffers,
 * Hopx's base64 the most; held whole, it was ~1 GB on Hopx and Vercel, 737 MB for Daytona's
 * stdin, ~180 MB for 96 MiB on Cloudflare's parts), and nothing is left in TMPDIR.
 */
describe("cp and stdin into a sandbox: the CLI's memory does not follow their size", () => {
  const SIZE = 160 * 1024 * 1024;
  const BOUND = 96 * 1024 * 1024;
  let bytes: Uint8Array = new Uint8Array(0);
  let digest = "";
  beforeAll(() => {
    bytes = noise(SIZE);
    digest = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
  });
  afterAll(() => {
    bytes = new Uint8Array(0);
  });
  const cases: Array<[string, () => Record<string, string>, Partial<CreateSpec>?]> = [
    ["local", () => ({})],
    ["docker", () => ({}), { image: "sandboxes-test/busybox" }],
    ["e2b", () => e2b.env()],
    ["daytona", () => ({ DAYTONA_API_KEY: "cli-conformance-key", DAYTONA_API_URL: daytona.apiUrl })],
    ["modal", () => ({ MODAL_SERVER_URL: modal.url, MODAL_TOKEN_ID: "ak-cli", MODAL_TOKEN_SECRET: "as-cli" })],
    ["sprites", () => sprites.env()],
    ["hopx", () => hopx.env()],
    ["cloudflare", () => cloudflare.env()],
    ["vercel", () => vercel.env()],
  ];
  /** A sandbox of `name` for `body`, with a TMPDIR of its own that must be empty at the end. */
  const inSandbox = async (name: string, env: () => Record<string, string>, spec: Partial<CreateSpec> | undefined, body: (provider: CliProvider, id: string) => Promise<void>) => {
    const tmp = mkdtempSync(join(tmpdir(), "sandboxes-cliconf-tmpdir-"));
    const provider = new CliProvider({ provider: name, env: { ...env(), TMPDIR: tmp } });
    const { id } = await provider.create({ labels: {}, env: {}, ...spec });
    try {
      await body(provider, id);
      expect(readdirSync(tmp)).toEqual([]);
    } finally {
      await provider.destroy(id);
      await provider.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  };
  const output = async (provider: CliProvider, id: string, script: string) => {
    const out: Uint8Array[] = [];
    const { exitCode } = await provider.exec(id, { argv: ["sh", "-c", script], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
    expect(exitCode).toBe(0);
    return Buffer.concat(out).toString();
  };
  for (const [name, env, spec] of cases) {
    test(`${name}: cp of 160 MiB arrives whole; the peak grows by less than 96 MiB over a one-byte copy's`, async () => {
      await inSandbox(name, env, spec, async (provider, id) => {
        const { idle, big } = await provider.copyPeaks(id, "/tmp", bytes);
        expect([idle.code, big.code]).toEqual([0, 0]);
        expect((await output(provider, id, "sha256sum < /tmp/big && rm /tmp/big")).split(" ")[0]).toBe(digest);
        expect(big.peakBytes).toBeLessThan(idle.peakBytes + BOUND);
      });
    }, 180_000);
    const what = name === "cloudflare" ? "160 MiB of stdin are refused once past 32 MiB" : "160 MiB of stdin reach the command whole";
    test(`${name}: ${what}; the peak grows by less than 96 MiB over one byte's`, async () => {
      await inSandbox(name, env, spec, async (provider, id) => {
        const { idle, big } = await provider.stdinPeaks(id, "wc -c > /tmp/stdin-bytes", bytes);
        expect(idle.code).toBe(0);
        if (name === "cloudflare") {
          expect(big.code).toBe(125);
          expect(big.stderr).toContain("stdin is more than the 33554432 bytes a cloudflare sandbox can take");
        } else {
          expect(big.code).toBe(0);
          expect(Number((await output(provider, id, "cat /tmp/stdin-bytes")).trim())).toBe(SIZE);
        }
        expect(big.peakBytes).toBeLessThan(idle.peakBytes + BOUND);
      });
    }, 180_000);
  }
});

describe("the fakes after the suites", () => {
  // Runs after each suite's afterAll destroyed what it created, through `sandboxes destroy`.
  test("no sandbox was left behind on any fake, and the binary really used them", () => {
    expect([...e2b.sandboxes.keys()]).toEqual([]);
    expect(e2b.creates.length).toBeGreaterThanOrEqual(2);
    expect(daytona.live()).toEqual([]);
    expect(daytona.requests.filter((r) => r === "POST /api/sandbox").length).toBeGreaterThanOrEqual(2);
    expect(modal.running().map((s) => s.id)).toEqual([]);
    expect(modal.sandboxes.size).toBeGreaterThanOrEqual(2);
    expect([...sprites.sprites.keys()]).toEqual([]);
    expect(sprites.creates.length).toBeGreaterThanOrEqual(2);
    expect([...hopx.sandboxes.keys()]).toEqual([]);
    expect(hopx.creates.length).toBeGreaterThanOrEqual(2);
    expect(cloudflare.live()).toEqual([]);
    expect(cloudflare.issued.length).toBeGreaterThanOrEqual(2);
    expect([...vercel.sandboxes.keys()]).toEqual([]);
    expect(vercel.creates.length).toBeGreaterThanOrEqual(2);
  });
});
