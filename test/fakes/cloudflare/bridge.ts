/**
 * The REAL bridge router of `@cloudflare/sandbox` 0.12.10 (`bridge()` from
 * `@cloudflare/sandbox/bridge`, its Hono app with auth, id checks, /workspace checks, SSE framing
 * and error JSON), run in Bun. Only what lies behind it is fake (provider-wire.md §6.3 b):
 *   - the `cloudflare:workers` module, shimmed with Bun.plugin;
 *   - the two Durable Object namespaces: `WarmPool` (sandbox id -> container UUID) and `Sandbox`,
 *     whose stubs run commands, read and write files and open terminals in a fake container
 *     (container.ts) for real.
 * Both the shim and the stub methods follow internals of 0.12.10 and may drift with new releases.
 */
import type { Server } from "bun";
import type { Containers, FakeContainer } from "./container";

export type WorkerFetch = (request: Request, env: Record<string, unknown>, ctx: unknown) => Promise<Response>;

let loaded: Promise<WorkerFetch> | undefined;

/** Loads the published bridge once per process, behind the `cloudflare:workers` shim. */
export function loadBridge(): Promise<WorkerFetch> {
  loaded ??= (async () => {
    const placeholder = { idFromName: () => ({}), get: () => ({}) };
    Bun.plugin({
      name: "cloudflare-workers-shim",
      setup(build) {
        build.module("cloudflare:workers", () => ({
          loader: "object",
          exports: {
            DurableObject: class {},
            RpcTarget: class {},
            WorkerEntrypoint: class {},
            // bridge() checks the bindings of the module-level env once, when it is called.
            env: { Sandbox: placeholder, WarmPool: placeholder, SANDBOX_API_KEY: "placeholder" },
            tracing: undefined,
          },
        }));
      },
    });
    const { bridge } = (await import("@cloudflare/sandbox/bridge")) as unknown as { bridge: (worker: object) => { fetch: WorkerFetch } };
    return bridge({}).fetch;
  })();
  return loaded;
}

export interface UpgradeData {
  container: FakeContainer;
  cols: number;
  rows: number;
  shell: string;
}

/** The state behind the Durable Object stubs: the warm pool's assignments and the containers. */
export class FakeDurableObjects {
  /** Sandbox id -> container UUID, as the WarmPool keeps it. */
  readonly assigned = new Map<string, string>();
  private readonly starting = new Map<string, Promise<FakeContainer>>();

  constructor(private readonly containers: Containers) {}

  container(uuid: string): Promise<FakeContainer> {
    const live = this.containers.live.get(uuid);
    if (live) return Promise.resolve(live);
    let start = this.starting.get(uuid);
    if (!start) {
      start = this.containers.start(uuid).finally(() => this.starting.delete(uuid));
      this.starting.set(uuid, start);
    }
    return start;
  }

  /** The Worker `env` for one request: bindings whose stubs can upgrade that request to a WebSocket. */
  env(request: Request, server: Server<UpgradeData>, apiKey: string | undefined, upgraded: { done: boolean }): Record<string, unknown> {
    const warmPool = {
      configure: async () => {},
      getContainer: async (sandboxId: string) => {
        let uuid = this.assigned.get(sandboxId);
        if (!uuid) {
          uuid = crypto.randomUUID();
          this.assigned.set(sandboxId, uuid);
        }
        return uuid;
      },
      lookupContainer: async (sandboxId: string) => this.assigned.get(sandboxId) ?? null,
      reportStopped: async (uuid: string) => {
        for (const [sandboxId, assigned] of this.assigned) if (assigned === uuid) this.assigned.delete(sandboxId);
      },
      getStats: async () => ({ warm: 0, assigned: this.assigned.size, total: this.assigned.size, maxInstances: null }),
      shutdownPrewarmed: async () => {},
    };
    const sandbox = (uuid: string) => ({
      configure: async () => {},
      fetch: async (proxied: Request) => {
        // The terminal route hands the client's upgrade to the container (GET /ws/pty?…).
        const url = new URL(proxied.url);
        if (url.pathname !== "/ws/pty") return new Response("not found", { status: 404 });
        const data: UpgradeData = {
          container: await this.container(uuid),
          cols: Number(url.searchParams.get("cols") || 80),
          rows: Number(url.searchParams.get("rows") || 24),
          shell: url.searchParams.get("shell") || "/bin/bash",
        };
        upgraded.done = server.upgrade(request, { data });
        return upgraded.done ? new Response(null, { status: 200 }) : new Response("upgrade failed", { status: 400 });
      },
      execWithSessionToken: async (command: string, _session: string, options?: ExecOptions) => {
        const started = Date.now();
        const container = await this.container(uuid);
        const streaming = options?.stream && options.onOutput ? options.onOutput : undefined;
        try {
          const result = await this.containers.exec(container, command, { cwd: options?.cwd, timeoutMs: options?.timeout }, streaming);
          if (result.timedOut) throw new Error(`Command timed out after ${options?.timeout}ms`);
          const answer = { success: result.exitCode === 0, exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, command, duration: Date.now() - started, timestamp: new Date(started).toISOString() };
          options?.onComplete?.(answer);
          return answer;
        } catch (error) {
          options?.onError?.(error as Error);
          throw error;
        }
      },
      writeFile: async (path: string, content: string, fileOptions?: { encoding?: string }) => {
        const bytes = fileOptions?.encoding === "base64" ? Buffer.from(content, "base64") : Buffer.from(content, "utf8");
        await this.containers.writeFile(await this.container(uuid), path, bytes);
        return { success: true, path };
      },
      readFileStream: async (path: string) => {
        const bytes = await this.containers.readFile(await this.container(uuid), path);
        if (!bytes) throw Object.assign(new Error(`File not found: ${path}`), { code: "FILE_NOT_FOUND" });
        return fileEvents(bytes);
      },
      destroy: async () => this.containers.destroy(uuid),
    });
    const namespace = <T>(make: (name: string) => T) => ({ idFromName: (name: string) => ({ name }), get: (id: { name: string }) => make(id.name) });
    return { Sandbox: namespace(sandbox), WarmPool: namespace(() => warmPool), ...(apiKey ? { SANDBOX_API_KEY: apiKey } : {}) };
  }
}

interface ExecOptions {
  stream?: boolean;
  timeout?: number;
  cwd?: string;
  onOutput?(stream: "stdout" | "stderr", data: string): void;
  onComplete?(result: unknown): void;
  onError?(error: Error): void;
}

/** readFileStream's answer: SSE of metadata, base64 chunks and complete, as the container sends it. */
function fileEvents(bytes: Uint8Array): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const event = (value: unknown) => encoder.encode(`data: ${JSON.stringify(value)}\n\n`);
  return new ReadableStream({
    start(controller) {
      controller.enqueue(event({ type: "metadata", mimeType: "application/octet-stream", size: bytes.length, isBinary: true, encoding: "base64" }));
      for (let offset = 0; offset < bytes.length; offset += 48 * 1024) {
        controller.enqueue(event({ type: "chunk", data: Buffer.from(bytes.subarray(offset, offset + 48 * 1024)).toString("base64") }));
      }
      controller.enqueue(event({ type: "complete", bytesRead: bytes.length }));
      controller.close();
    },
  });
}
