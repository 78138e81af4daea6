/**
 * Start-up stays light: the fast paths load no package from node_modules (so no provider SDK),
 * and the SDKs still work inside a binary built with the release flags.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileEntry } from "../../scripts/build-binaries";
import { ROOT, run, tempHome } from "./_release-helpers";

// Spawns binaries, shells and servers: independent of whichever bunfig.toml is in effect.
setDefaultTimeout(60_000);

const TRACE = join(ROOT, "test/e2e/_release-trace.ts");
const home = tempHome("sandboxes-startup-");
afterAll(() => home.remove());

/** Modules loaded by `bun src/main.ts ...args`, paths relative to the repo. */
async function loadedModules(entry: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; modules: string[] }> {
  const out = join(home.home, `trace-${Math.random().toString(36).slice(2)}.json`);
  const result = await run([process.execPath, "--preload", TRACE, entry, ...args], { env: { ...home.env, ...env, SANDBOXES_TRACE_OUT: out } });
  const modules = (JSON.parse(readFileSync(out, "utf8")) as string[]).map((path) => path.replace(`${ROOT}/`, ""));
  return { code: result.code, modules };
}

describe("start-up imports", () => {
  test("the trace sees packages when they are loaded (control)", async () => {
    const { code, modules } = await loadedModules(join(ROOT, "test/e2e/_release-sdk-smoke.ts"), [], { SMOKE_IMPORT_ONLY: "1" });
    expect(code).toBe(0);
    for (const sdk of ["node_modules/e2b/", "node_modules/@daytonaio/sdk/", "node_modules/modal/"]) {
      expect(modules.some((m) => m.includes(sdk))).toBe(true);
    }
  }, 60_000);

  test.each(["--version", "--help", "providers", "providers --json"])("`sandboxes %s` loads nothing from node_modules", async (line) => {
    const args = line.split(" ");
    const { code, modules } = await loadedModules(join(ROOT, "src/main.ts"), args);
    expect(code).toBe(0);
    expect(modules.filter((m) => m.includes("node_modules/"))).toEqual([]);
    if (args[0] === "providers") expect(modules).toContain("src/commands/providers.ts");
  });

  test.each(["--version", "--help", "providers", "providers --json", "help exit-codes"])(
    "`sandboxes %s` loads no module that imports a node: built-in (each costs 0.3-2.5 ms to compile)",
    async (line) => {
      const { code, modules } = await loadedModules(join(ROOT, "src/main.ts"), line.split(" "));
      expect(code).toBe(0);
      const ours = modules.filter((m) => m.startsWith("src/"));
      expect(ours.length).toBeGreaterThan(1);
      // Only top-level imports count: a require() inside a function runs when that path is taken.
      const importing = ours.filter((m) => /^import[^;]*?from\s+"node:/m.test(readFileSync(join(ROOT, m), "utf8")));
      expect(importing).toEqual([]);
    },
  );

  test.each(["--version", "--help", "providers", "providers --json", "help exit-codes"])("`sandboxes %s` does not open the state store (bun:sqlite)", async (line) => {
    const { code, modules } = await loadedModules(join(ROOT, "src/main.ts"), line.split(" "));
    expect(code).toBe(0);
    const ours = modules.filter((m) => m.startsWith("src/"));
    expect(ours.length).toBeGreaterThan(1);
    expect(ours.filter((m) => /^import[^;]*?from\s+"bun:sqlite"/m.test(readFileSync(join(ROOT, m), "utf8")))).toEqual([]);
  });

  test("a hidden entry point (`sandboxes __egress-bridge`) loads its own module and nothing else of ours", async () => {
    const { code, modules } = await loadedModules(join(ROOT, "src/main.ts"), ["__egress-bridge"]);
    expect(code).toBe(2);
    expect(modules.filter((m) => m.startsWith("src/"))).toEqual(["src/providers/local/egress/entry.ts"]);
  });

  test("--version loads no command module", async () => {
    const { modules } = await loadedModules(join(ROOT, "src/main.ts"), ["--version"]);
    expect(modules.filter((m) => m.startsWith("src/commands/") && !m.endsWith("/index.ts"))).toEqual([]);
  });
});

describe("provider SDKs inside a binary built with the release flags", () => {
  const work = mkdtempSync(join(tmpdir(), "sandboxes-sdk-smoke-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test("make the same calls, with the same results, as from source", async () => {
    const http: string[] = [];
    const grpc: string[] = [];
    const httpServer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(request) {
        http.push(`${request.method} ${new URL(request.url).pathname}`);
        return Response.json({ message: "smoke: unauthorized" }, { status: 401 });
      },
    });
    const grpcServer = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket, data) {
          grpc.push(data.toString("latin1").slice(0, 14));
          socket.end();
        },
      },
    });
    try {
      const binary = join(work, "sdk-smoke");
      await compileEntry(join(ROOT, "test/e2e/_release-sdk-smoke.ts"), binary);
      const env = {
        ...home.env,
        SMOKE_HTTP: `http://127.0.0.1:${httpServer.port}`,
        SMOKE_GRPC: `http://127.0.0.1:${grpcServer.port}`,
        MODAL_SERVER_URL: `http://127.0.0.1:${grpcServer.port}`,
      };
      // Timestamps differ run to run; a bundled class can get a numeric suffix where scope
      // hoisting met two classes of one name (DaytonaAuthenticationError2): instanceof and
      // error.message are unchanged, only constructor.name differs.
      const normalise = (text: string) =>
        JSON.parse(text.replace(/\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/g, "(time)").replace(/"([A-Za-z]+?)\d*: /g, '"$1: '));
      const fromSource = await run([process.execPath, join(ROOT, "test/e2e/_release-sdk-smoke.ts")], { env });
      const sourceRequests = [...http];
      const compiled = await run([binary], { env });
      expect(compiled.code).toBe(0);
      expect(normalise(compiled.stdout)).toEqual(normalise(fromSource.stdout));
      const report = normalise(compiled.stdout);
      expect(report.daytona).toStartWith("DaytonaAuthenticationError: smoke: unauthorized");
      expect(report.e2b).toStartWith("AuthenticationError: ");
      expect(report.modal).toStartWith("ClientError: /modal.client.ModalClient/");
      const compiledRequests = http.slice(sourceRequests.length);
      expect(compiledRequests).toContain("GET /daytona/sandbox/smoke-sandbox");
      expect(compiledRequests).toContain("POST /e2b/v2/sandboxes");
      expect(grpc.length).toBeGreaterThan(0);
      expect(new Set(grpc)).toEqual(new Set(["PRI * HTTP/2.0"]));
    } finally {
      httpServer.stop(true);
      grpcServer.stop(true);
    }
  }, 120_000);
});
