/**
 * A fake Modal on 127.0.0.1 that speaks Modal's real wire protocol: gRPC over plaintext HTTP/2,
 * the control plane (modal.client.ModalClient) and the TaskCommandRouter on one port, encoded
 * with the SDK's own ts-proto definitions. Point the real SDK at it with
 * MODAL_SERVER_URL=http://127.0.0.1:PORT (the router URL still says https://: the SDK refuses
 * anything else, but dials localhost routers without TLS).
 *
 * Each sandbox is a temp directory whose home/ and tmp/ are mounted over /root and /tmp in mount
 * and pid namespaces of its own (../namespaces.ts), and every exec is a real local process in
 * them (its own process group), so output, exit codes, signals, timeouts and file round trips
 * are real, and one sandbox sees neither another's /tmp nor its processes. State is kept
 * so tests can assert that nothing leaked, and faults can be injected per method.
 *
 *   const fake = await startFakeModal();
 *   fake.faults.push({ method: "SandboxCreateV2", code: Status.UNAVAILABLE, times: 2, after: true });
 *   ... MODAL_SERVER_URL=fake.url ...
 *   await fake.stop();
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createTcpServer, connect, type Server as TcpServer, type Socket } from "node:net";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, ServerError, Status, type CallContext } from "nice-grpc";
import { type Definition, modalDefinitions } from "./definitions";
import { enter, type Held, holdNamespaces, keepEntering, release } from "../namespaces";
import { offline } from "../netns";

/** Modal runs commands as root: HOME, and the directory they start in unless a workdir is given. */
const HOME = "/root";

export { Status };

export interface Fault {
  /** gRPC method name, e.g. "SandboxCreateV2", "TaskExecStdioRead". */
  method: string;
  /** Status to fail with; omit with `drop` to only cut the connection. */
  code?: Status;
  /** How many calls fail (default 1). */
  times?: number;
  /** Unary calls: do the work first, then fail (a lost reply). */
  after?: boolean;
  /** Cut every client connection (a dropped TCP connection) instead of answering. */
  drop?: boolean;
  /** Streams: answer this many messages first, then fail. */
  afterMessages?: number;
  /** Answer only after this long. */
  delayMs?: number;
}

interface Exec {
  id: string;
  sandboxId: string;
  child: ChildProcess;
  stdout: Buffer[];
  stderr: Buffer[];
  stdinBytes: number;
  stdinClosed: boolean;
  exit?: { code?: number; signal?: number };
  done: Promise<void>;
  changed: Set<() => void>;
  timer?: ReturnType<typeof setTimeout>;
}

export interface FakeSandbox {
  id: string;
  taskId: string;
  appId: string;
  dir: string;
  /** The process that holds its namespaces (pid 1 inside). */
  held: Held;
  imageTag: string;
  createdAt: number;
  tags: Array<{ tagName: string; tagValue: string }>;
  env: Record<string, string>;
  workdir?: string;
  timeoutSecs: number;
  /** The definition's resources (milli-CPUs, MiB), and whether its network access is BLOCKED. */
  resources?: { milliCpu?: number; memoryMb?: number };
  blockNetwork: boolean;
  terminated: boolean;
  execs: Set<Exec>;
}

export interface CallRecord {
  method: string;
  request: unknown;
  metadata: Record<string, string>;
  /** When the call arrived (ms since the epoch). */
  at: number;
}

/**
 * The registry this fake can "pull" from: Docker Hub's official images the tests use. Modal
 * builds `FROM <image>` itself, and a build from a reference no registry has ends in
 * GENERIC_STATUS_FAILURE with the pull error (the SDK throws "Image build for im-… failed").
 */
const PULLABLE = /^(?:docker\.io\/)?(?:library\/)?(?:python|alpine|node|debian|ubuntu|busybox)(?::[\w.-]+)?$/;

export interface FakeModalOptions {
  /** The one token the control plane accepts (`x-modal-token-id` / `x-modal-token-secret`); "ak-fake" / "as-fake" unless given. */
  tokenId?: string;
  tokenSecret?: string;
  /** More image references the fake's registry has, besides the official ones in PULLABLE. */
  images?: string[];
}

export interface FakeModal {
  url: string;
  tokenId: string;
  tokenSecret: string;
  /** MODAL_SERVER_URL and the token this fake accepts. */
  env(): Record<string, string>;
  port: number;
  sandboxes: Map<string, FakeSandbox>;
  calls: CallRecord[];
  /** The argv of every command an exec started, in order. */
  started: string[][];
  faults: Fault[];
  /** Like Modal, answer a retried SandboxCreateV2 (same x-idempotency-key) with the first reply. */
  honorIdempotencyKey: boolean;
  /** Leave tags out of SandboxListV2 replies (the proto marks the field "not yet exposed"). */
  listOmitsTags: boolean;
  /** Sandboxes not yet terminated. */
  running(): FakeSandbox[];
  /** Cuts every client connection now. */
  dropConnections(): void;
  /** Client connections open right now (each gRPC channel holds one). */
  openConnections(): number;
  stop(): Promise<void>;
}

const ROUTER_JWT_SECONDS = 3600;

function fakeJwt(subject: string): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${encode({ alg: "none", typ: "JWT" })}.${encode({ sub: subject, exp: Math.floor(Date.now() / 1000) + ROUTER_JWT_SECONDS })}.fake`;
}

function signalNumber(name: NodeJS.Signals | null): number | undefined {
  return name ? (constants.signals as Record<string, number>)[name] : undefined;
}

/** A TCP pass-through in front of the gRPC server, so faults can cut live connections. */
function startProxy(target: number): Promise<{ server: TcpServer; port: number; dropAll(): void; clients(): number }> {
  const clients = new Set<Socket>();
  const sockets = new Set<Socket>();
  const server = createTcpServer((client) => {
    const upstream = connect(target, "127.0.0.1");
    sockets.add(client).add(upstream);
    clients.add(client);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      clients.delete(client);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        server,
        port,
        clients: () => clients.size,
        dropAll() {
          for (const socket of sockets) socket.resetAndDestroy?.() ?? socket.destroy();
          sockets.clear();
        },
      });
    });
  });
}

export async function startFakeModal(options: FakeModalOptions = {}): Promise<FakeModal> {
  const tokenId = options.tokenId ?? "ak-fake";
  const tokenSecret = options.tokenSecret ?? "as-fake";
  const { control, router } = await modalDefinitions();
  const sandboxes = new Map<string, FakeSandbox>();
  const byTask = new Map<string, FakeSandbox>();
  const execs = new Map<string, Exec>();
  const apps = new Map<string, string>();
  const images = new Map<string, string>();
  const idempotent = new Map<string, unknown>();
  const calls: CallRecord[] = [];
  const started: string[][] = [];
  const faults: Fault[] = [];
  let port = 0;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let clock = 0;

  const takeFault = (method: string): Fault | undefined => {
    const fault = faults.find((f) => f.method === method && (f.times ?? 1) > 0);
    if (fault) fault.times = (fault.times ?? 1) - 1;
    return fault;
  };
  const fail = async (fault: Fault, method: string): Promise<never> => {
    if (fault.drop) {
      proxy.dropAll();
      await Bun.sleep(50);
    }
    throw new ServerError(fault.code ?? Status.UNAVAILABLE, `injected fault on ${method}`);
  };

  const sandboxFor = (sandboxId: string): FakeSandbox => {
    const sandbox = sandboxes.get(sandboxId);
    if (!sandbox) throw new ServerError(Status.NOT_FOUND, `Sandbox ${sandboxId} not found`);
    return sandbox;
  };
  const execFor = (taskId: string, execId: string): Exec => {
    const exec = execs.get(execId);
    if (!exec || byTask.get(taskId)?.id !== exec.sandboxId) throw new ServerError(Status.NOT_FOUND, `exec ${execId} not found`);
    return exec;
  };
  const notify = (exec: Exec) => {
    for (const wake of exec.changed) wake();
  };

  const terminate = (sandbox: FakeSandbox) => {
    if (sandbox.terminated) return;
    sandbox.terminated = true;
    for (const exec of sandbox.execs) killGroup(exec.child);
    release(sandbox.held);
    rmSync(sandbox.dir, { recursive: true, force: true });
  };

  function killGroup(child: ChildProcess) {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  }

  function startExec(sandbox: FakeSandbox, request: any): Exec {
    started.push([...request.commandArgs]);
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME, LANG: "C.UTF-8", ...sandbox.env };
    for (const source of request.secretSources ?? []) Object.assign(env, source.env?.contents ?? {});
    Object.assign(env, request.env ?? {});
    let argv: string[] = request.commandArgs;
    const pty = request.ptyInfo?.enabled;
    if (pty) {
      env.TERM = request.ptyInfo.envTerm || "xterm-256color";
      // A real terminal of the requested size: script(1) allocates the pty.
      const line = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
      argv = ["script", "-q", "-e", "-c", `stty rows ${request.ptyInfo.winszRows} cols ${request.ptyInfo.winszCols}; exec ${line}`, "/dev/null"];
    }
    argv = enter(sandbox.held, request.workdir || sandbox.workdir || HOME, [...offline(sandbox.blockNetwork), ...argv]);
    const child = spawn(argv[0]!, argv.slice(1), {
      env,
      detached: true,
      stdio: ["pipe", "pipe", "pipe"],
    });
    const exec: Exec = {
      id: request.execId,
      sandboxId: sandbox.id,
      child,
      stdout: [],
      stderr: [],
      stdinBytes: 0,
      stdinClosed: false,
      changed: new Set(),
      done: undefined as unknown as Promise<void>,
    };
    child.stdout!.on("data", (chunk: Buffer) => (exec.stdout.push(chunk), notify(exec)));
    child.stderr!.on("data", (chunk: Buffer) => (exec.stderr.push(chunk), notify(exec)));
    child.stdin!.on("error", () => {});
    const stopWatching = child.pid ? keepEntering(child.pid) : () => {};
    child.on("exit", stopWatching);
    exec.done = new Promise((resolve) => {
      let exited = false;
      let outputsClosed = 0;
      const finish = () => {
        if (!exited || outputsClosed < 2) return;
        if (exec.timer) clearTimeout(exec.timer);
        sandbox.execs.delete(exec);
        notify(exec);
        resolve();
      };
      child.stdout!.on("close", () => (outputsClosed++, finish()));
      child.stderr!.on("close", () => (outputsClosed++, finish()));
      child.on("exit", (code, signal) => {
        const number = signalNumber(signal);
        exec.exit = number !== undefined ? { signal: number } : { code: code ?? 0 };
        exited = true;
        // A background child may keep the pipes open: do not wait for it.
        setTimeout(() => ((outputsClosed = 2), finish()), 200);
        finish();
      });
      child.on("error", (error) => {
        exec.stderr.push(Buffer.from(`${error.message}\n`));
        exec.exit = { code: 127 };
        exited = true;
        outputsClosed = 2;
        finish();
      });
    });
    if (request.timeoutSecs) exec.timer = setTimeout(() => killGroup(child), request.timeoutSecs * 1000);
    execs.set(exec.id, exec);
    sandbox.execs.add(exec);
    return exec;
  }

  const controlHandlers: Record<string, (request: any, context: CallContext) => unknown> = {
    AuthTokenGet: () => ({ token: fakeJwt("auth") }),
    AppGetOrCreate: (request) => {
      const key = `${request.environmentName}/${request.appName}`;
      if (!apps.has(key)) {
        if (request.objectCreationType !== 1) throw new ServerError(Status.NOT_FOUND, `App '${request.appName}' not found`);
        apps.set(key, `ap-${randomUUID().slice(0, 12)}`);
      }
      return { appId: apps.get(key) };
    },
    EnvironmentGetOrCreate: (request) => ({
      environmentId: "en-fake",
      metadata: { name: request.deploymentName || "main", settings: { imageBuilderVersion: "2024.10" } },
    }),
    ImageGetOrCreate: (request) => {
      const from = (request.image?.dockerfileCommands?.[0] ?? "").replace(/^FROM /, "");
      if (!PULLABLE.test(from) && !options.images?.includes(from)) {
        return { imageId: `im-${randomUUID().slice(0, 12)}`, result: { status: 2, exception: `Failed to pull ${from}: manifest unknown: manifest unknown` } };
      }
      const imageId = `im-${Buffer.from(from).toString("hex").slice(0, 16)}`;
      images.set(imageId, from);
      return { imageId, result: { status: 1 } };
    },
    SandboxCreateV2: async (request) => {
      const definition = request.definition ?? {};
      const env: Record<string, string> = {};
      for (const source of request.secretSources ?? []) Object.assign(env, source.env?.contents ?? {});
      const id = `sb2-${randomUUID().replaceAll("-", "").slice(0, 20)}`;
      const dir = mkdtempSync(join(tmpdir(), "fake-modal-sb-"));
      const held = await holdNamespaces(dir, HOME);
      if ("error" in held) {
        rmSync(dir, { recursive: true, force: true });
        throw new ServerError(Status.INTERNAL, `fake could not make the sandbox's namespaces: ${held.error}`);
      }
      const sandbox: FakeSandbox = {
        id,
        taskId: `ta-${randomUUID().slice(0, 12)}`,
        appId: request.appId,
        dir,
        held,
        imageTag: images.get(definition.imageId) ?? definition.imageId,
        // Strictly increasing, so paging by beforeTimestamp is exact.
        createdAt: Math.max(Date.now() / 1000, clock + 0.001),
        tags: request.tags ?? [],
        env,
        workdir: definition.workdir,
        timeoutSecs: definition.timeoutSecs,
        resources: definition.resources,
        blockNetwork: Boolean(definition.blockNetwork) || definition.networkAccess?.networkAccessType === 2,
        terminated: false,
        execs: new Set(),
      };
      clock = sandbox.createdAt;
      sandboxes.set(id, sandbox);
      // Like Modal: the sandbox ends when its timeout runs out.
      if (definition.timeoutSecs > 0) setTimeout(() => terminate(sandbox), definition.timeoutSecs * 1000).unref?.();
      byTask.set(sandbox.taskId, sandbox);
      return { sandboxId: id, taskId: sandbox.taskId, commandRouterAccess: { url: `https://127.0.0.1:${port}`, jwt: fakeJwt(id) } };
    },
    SandboxListV2: (request) => {
      const wanted: Array<{ tagName: string; tagValue: string }> = request.tags ?? [];
      const matches = [...sandboxes.values()]
        .filter((s) => !s.terminated || request.includeFinished)
        .filter((s) => !request.appId || s.appId === request.appId)
        .filter((s) => !request.beforeTimestamp || s.createdAt < request.beforeTimestamp)
        .filter((s) => wanted.every((w) => s.tags.some((t) => t.tagName === w.tagName && t.tagValue === w.tagValue)))
        .sort((a, b) => b.createdAt - a.createdAt)
        // Small pages, so clients must follow beforeTimestamp to see everything.
        .slice(0, 2);
      return { sandboxes: matches.map((s) => ({ id: s.id, appId: s.appId, createdAt: s.createdAt, tags: fake.listOmitsTags ? [] : s.tags, imageId: s.imageTag })) };
    },
    SandboxTagsGetV2: (request) => ({ tags: sandboxFor(request.sandboxId).tags }),
    SandboxTagsSetV2: (request) => {
      sandboxFor(request.sandboxId).tags = request.tags;
      return {};
    },
    SandboxWaitV2: async (request) => {
      const sandbox = sandboxFor(request.sandboxId);
      const result = () => (sandbox.terminated ? { result: { status: 3, exitcode: 137 }, metadata: { appId: sandbox.appId } } : { metadata: { appId: sandbox.appId } });
      if (!sandbox.terminated && request.timeout > 0) await Bun.sleep(Math.min(request.timeout, 1) * 1000);
      return result();
    },
    SandboxTerminateV2: (request) => {
      terminate(sandboxFor(request.sandboxId));
      return {};
    },
    SandboxGetTaskIdV2: (request) => {
      const sandbox = sandboxFor(request.sandboxId);
      return sandbox.terminated ? { taskResult: { status: 3, exception: "Sandbox terminated" } } : { taskId: sandbox.taskId };
    },
    SandboxGetCommandRouterAccess: (request) => {
      sandboxFor(request.sandboxId);
      return { url: `https://127.0.0.1:${port}`, jwt: fakeJwt(request.sandboxId) };
    },
  };

  const routerHandlers: Record<string, (request: any, context: CallContext) => unknown> = {
    TaskExecStart: (request) => {
      const sandbox = byTask.get(request.taskId);
      if (!sandbox || sandbox.terminated) throw new ServerError(Status.NOT_FOUND, `task ${request.taskId} not found`);
      if (execs.has(request.execId)) return {};
      startExec(sandbox, request);
      return {};
    },
    TaskExecStdioRead: async function* (request, context) {
      const exec = execFor(request.taskId, request.execId);
      const chunks = request.fileDescriptor === 1 ? exec.stderr : exec.stdout;
      let offset = Number(request.offset ?? 0);
      while (true) {
        const all = Buffer.concat(chunks);
        if (all.length > offset) {
          const data = all.subarray(offset);
          offset = all.length;
          yield { data };
          continue;
        }
        if (sandboxes.get(exec.sandboxId)!.execs.has(exec) === false && exec.exit) return;
        await new Promise<void>((resolve) => {
          const wake = () => (exec.changed.delete(wake), resolve());
          exec.changed.add(wake);
          context.signal.addEventListener("abort", wake, { once: true });
        });
        if (context.signal.aborted) return;
      }
    },
    TaskExecWait: async (request, context) => {
      const exec = execFor(request.taskId, request.execId);
      await Promise.race([exec.done, new Promise((resolve) => context.signal.addEventListener("abort", resolve, { once: true }))]);
      return exec.exit ?? {};
    },
    TaskExecPoll: (request) => execFor(request.taskId, request.execId).exit ?? {},
    TaskExecStdinWrite: (request) => {
      const exec = execFor(request.taskId, request.execId);
      const data: Uint8Array = request.data ?? new Uint8Array(0);
      const offset = Number(request.offset ?? 0);
      // Writes are idempotent by offset: a retried write is not applied twice.
      if (offset + data.length > exec.stdinBytes && !exec.stdinClosed) {
        const fresh = data.subarray(Math.max(0, exec.stdinBytes - offset));
        exec.child.stdin!.write(fresh);
        exec.stdinBytes += fresh.length;
      }
      if (request.eof && !exec.stdinClosed) {
        exec.stdinClosed = true;
        exec.child.stdin!.end();
      }
      return {};
    },
    TaskExecStdinStatus: (request) => {
      const exec = execFor(request.taskId, request.execId);
      return { numBytesWritten: exec.stdinBytes, closed: exec.stdinClosed };
    },
  };

  const clientStreamHandlers: Record<string, (requests: AsyncIterable<any>) => Promise<unknown>> = {
    TaskExecStdinWriteStream: async (requests) => {
      let exec: Exec | undefined;
      for await (const message of requests) {
        if (message.start) {
          exec = execFor(message.start.taskId, message.start.execId);
          if (Number(message.start.offset ?? 0) !== exec.stdinBytes) {
            throw new ServerError(Status.FAILED_PRECONDITION, `stdin offset ${message.start.offset} != ${exec.stdinBytes}`);
          }
        } else if (message.data && exec && !exec.stdinClosed) {
          exec.child.stdin!.write(message.data);
          exec.stdinBytes += message.data.length;
        } else if (message.end && exec && !exec.stdinClosed) {
          exec.stdinClosed = true;
          exec.child.stdin!.end();
        }
      }
      return {};
    },
  };

  const metadataOf = (context: CallContext) => Object.fromEntries([...context.metadata].map(([k, v]) => [k, String(v)]));

  /**
   * Like Modal's control plane: every call carries the token, and one it does not know is
   * UNAUTHENTICATED before anything is done. (The router checks its own JWT instead.)
   */
  const authenticate = (context: CallContext) => {
    if (context.metadata.get("x-modal-token-id") !== tokenId || context.metadata.get("x-modal-token-secret") !== tokenSecret) {
      throw new ServerError(Status.UNAUTHENTICATED, "Invalid token id or secret: the token was not found, or it has been revoked");
    }
  };

  function implement(definition: Definition, handlers: Record<string, (request: any, context: CallContext) => unknown>, authenticated: boolean) {
    const implementation: Record<string, unknown> = {};
    for (const [key, method] of Object.entries(definition.methods)) {
      const responseType = (method as unknown as { responseType: { fromPartial(v: unknown): unknown } }).responseType;
      const handler = handlers[method.name];
      const clientStream = clientStreamHandlers[method.name];
      const record = (request: unknown, context: CallContext) => calls.push({ method: method.name, request, metadata: metadataOf(context), at: Date.now() });
      if (method.requestStream && !method.responseStream) {
        implementation[key] = async (requests: AsyncIterable<unknown>, context: CallContext) => {
          record(undefined, context);
          if (authenticated) authenticate(context);
          const fault = takeFault(method.name);
          if (fault?.delayMs) await Bun.sleep(fault.delayMs);
          if (fault && (fault.code !== undefined || fault.drop)) await fail(fault, method.name);
          if (!clientStream) throw new ServerError(Status.UNIMPLEMENTED, `fake Modal does not implement ${method.name}`);
          return responseType.fromPartial(await clientStream(requests));
        };
      } else if (method.responseStream) {
        implementation[key] = async function* (request: unknown, context: CallContext) {
          record(request, context);
          if (authenticated) authenticate(context);
          const fault = takeFault(method.name);
          if (fault?.delayMs) await Bun.sleep(fault.delayMs);
          if (fault && fault.afterMessages === undefined && (fault.code !== undefined || fault.drop)) await fail(fault, method.name);
          if (!handler) throw new ServerError(Status.UNIMPLEMENTED, `fake Modal does not implement ${method.name}`);
          let sent = 0;
          for await (const message of handler(request, context) as AsyncIterable<unknown>) {
            if (fault?.afterMessages !== undefined && sent >= fault.afterMessages) await fail(fault, method.name);
            yield responseType.fromPartial(message);
            sent++;
          }
        };
      } else {
        implementation[key] = async (request: Record<string, unknown>, context: CallContext) => {
          record(request, context);
          if (authenticated) authenticate(context);
          const fault = takeFault(method.name);
          if (fault?.delayMs) await Bun.sleep(fault.delayMs);
          const failing = fault && (fault.code !== undefined || fault.drop);
          if (failing && !fault.after) await fail(fault, method.name);
          if (!handler) throw new ServerError(Status.UNIMPLEMENTED, `fake Modal does not implement ${method.name}`);
          // Like Modal, a retried call with the same idempotency key gets the first answer.
          const idempotencyKey = context.metadata.get("x-idempotency-key");
          const key = `${method.name}:${idempotencyKey}`;
          const deduplicated = fake.honorIdempotencyKey && idempotencyKey !== undefined && method.name === "SandboxCreateV2";
          const response = (deduplicated && idempotent.get(key)) || responseType.fromPartial(await handler(request, context));
          if (deduplicated) idempotent.set(key, response);
          if (failing && fault.after) await fail(fault, method.name);
          return response;
        };
      }
    }
    return implementation;
  }

  const server = createServer();
  server.add(control as never, implement(control, controlHandlers, true) as never);
  server.add(router as never, implement(router, routerHandlers, false) as never);
  const grpcPort = await server.listen("127.0.0.1:0");
  proxy = await startProxy(grpcPort);
  port = proxy.port;

  const fake: FakeModal = {
    url: `http://127.0.0.1:${port}`,
    tokenId,
    tokenSecret,
    env: () => ({ MODAL_SERVER_URL: `http://127.0.0.1:${port}`, MODAL_TOKEN_ID: tokenId, MODAL_TOKEN_SECRET: tokenSecret }),
    honorIdempotencyKey: true,
    listOmitsTags: false,
    port,
    sandboxes,
    calls,
    started,
    faults,
    running: () => [...sandboxes.values()].filter((s) => !s.terminated),
    dropConnections: () => proxy.dropAll(),
    openConnections: () => proxy.clients(),
    async stop() {
      for (const sandbox of sandboxes.values()) terminate(sandbox);
      proxy.dropAll();
      proxy.server.close();
      server.forceShutdown();
    },
  };
  return fake;
}

if (import.meta.main) {
  const fake = await startFakeModal();
  process.stdout.write(`${fake.url}\n`);
}
