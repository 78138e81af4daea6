/**
 * A Provider that does every operation by spawning the compiled binary (dist/sandboxes), so the
 * shared conformance suite (suite.ts) can prove the CLI end to end, not only the providers
 * in-process. Each call is its own process with one private HOME / XDG dirs, NO_COLOR=1 and the
 * wrapped provider's environment (credentials, fake server URLs) — nothing else is inherited.
 * It only translates: every fact it returns is something the binary printed or its exit code.
 *
 *   create      sandboxes run -p P --keep --json [-i IMAGE] [-n NAME] [--ttl S] [--cpus N]
 *               [--memory Mm] [--network MODE] -l k=v… -e K=V… true
 *               (run's -e goes into CreateSpec.env — the CLI has no other way to give a sandbox
 *               env at create time — so the sandbox env is exactly what `run -e` sets)
 *   get / list  sandboxes list -p P --json [-l k=v…]   (get: the listed record with that id, or
 *               null; the CLI has no look-up by id alone, so the suite skips "get() of an unknown
 *               id" for it: see NO_LOOKUP_BY_ID)
 *   exec        sandboxes exec ID -p P [-e K=V…] [-w DIR] -- ARGV…
 *               stdout/stderr streamed live from the child's pipes, stdin piped, the exit code
 *               is the process's; exit 125 whose last stderr line is the CLI's own
 *               "sandboxes: …" rejects (after streaming it). With a timeout:
 *               sandboxes exec … -t MSms --json, and exit code, timed_out and the output come
 *               from its one JSON document (so such an exec does not stream)
 *   destroy     sandboxes destroy -p P --json ID   (exit 0, the id under destroyed or missing)
 *   putArchive  host tar extracts into a temp dir; `sandboxes cp ENTRY ID:DIR/` per top entry
 *   getArchive  `sandboxes cp ID:PATH TMP/`, then the host tar packs the one entry it wrote
 *   openPty     sandboxes shell ID -p P [-e K=V…] [-w DIR] in a terminal of its own (Bun.spawn
 *               with `terminal`), with `exec ARGV…` typed into the login shell; resize resizes
 *               that terminal, and the exit code is the binary's
 *
 * What the CLI cannot express is not claimed: mounts (run has no mount flag) and oneShot (`run`
 * itself decides when to use runOnce; no flag asks for it). The CLI's own
 * lines (the timeout warning, "sandboxes: …" errors) share stderr with the program: they are
 * passed on like the rest.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { findDescriptor } from "../../src/providers/catalog";
import { shellQuote } from "../../src/base/quote";
import { PtyOutput } from "../../src/providers/shared/pty";
import { peakMemory } from "../helpers";
import { type ArchiveSource, type Capabilities, type CreateSpec, type ExecOutcome, type ExecSpec, type Provider, type PtySession, type PtySpec, type SandboxRecord, wholeArchive } from "../../src/providers/types";

export const ROOT = resolve(import.meta.dir, "../..");
export const BINARY = process.env.SANDBOXES_BIN ?? join(ROOT, "dist", "sandboxes");

function newest(dir: string): number {
  let time = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    time = Math.max(time, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return time;
}

/**
 * Builds dist/sandboxes when it is missing or older than src/. Without NODE_ENV: `bun test`
 * sets it to "test" and the bundler would inline that into the binary.
 */
export async function ensureBinary(): Promise<void> {
  if (process.env.SANDBOXES_BIN) return;
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= newest(join(ROOT, "src"))) return;
  const { NODE_ENV: _, ...env } = process.env;
  const build = Bun.spawn(["bun", "run", "build"], { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
  if ((await build.exited) !== 0) throw new Error(`bun run build failed:\n${await new Response(build.stderr).text()}`);
}

export interface CliProviderOptions {
  /** The provider the binary is asked for (-p). */
  provider: string;
  /** The provider's own variables (credentials, server URLs, isolation mode…). */
  env?: Record<string, string>;
}

interface Spawned {
  code: number;
  stdout: string;
  stderr: string;
}

interface ListedSandbox {
  id: string;
  provider: string;
  name: string | null;
  state: SandboxRecord["state"];
  labels: Record<string, string>;
  created_at: string | null;
  image: string | null;
}

/** What the CLI can express of the wrapped provider's declared capabilities. */
export function cliCapabilities(provider: string): Capabilities {
  return { ...findDescriptor(provider).capabilities, mounts: false, oneShot: false, oneShotFiles: false };
}

/** Why the suite cannot ask the CLI provider's get() about an id on its own. */
export const NO_LOOKUP_BY_ID =
  "the CLI has no look-up by id alone: list filters by labels, and exec/destroy/cp resolve an id but act on the sandbox";

const labelFlags = (labels: Record<string, string> = {}) => Object.entries(labels).flatMap(([k, v]) => ["-l", `${k}=${v}`]);
const envFlags = (env: Record<string, string>) => Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);

/** 128+N for a child killed by signal N, like a shell reports it. */
function exitCodeOf(child: { exitCode: number | null; signalCode: string | number | null }): number {
  if (child.exitCode !== null) return child.exitCode;
  const signal = child.signalCode;
  const number = typeof signal === "number" ? signal : constants.signals[signal as keyof typeof constants.signals];
  return 128 + (number ?? 0);
}

export class CliProvider implements Provider {
  readonly name: string;
  readonly capabilities: Capabilities;
  /** Private HOME with its XDG dirs: the CLI's config and its registry of kept sandboxes. */
  readonly home: string;
  private readonly env: Record<string, string>;
  private readonly scratch: string;

  constructor(options: CliProviderOptions) {
    this.name = options.provider;
    this.capabilities = cliCapabilities(options.provider);
    this.home = mkdtempSync(join(tmpdir(), `sandboxes-cliconf-${options.provider}-`));
    this.scratch = join(this.home, "scratch");
    mkdirSync(join(this.home, ".config"), { recursive: true });
    mkdirSync(this.scratch, { recursive: true });
    this.env = {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: this.home,
      XDG_CONFIG_HOME: join(this.home, ".config"),
      XDG_STATE_HOME: join(this.home, ".state"),
      NO_COLOR: "1",
      ...options.env,
    };
  }

  /** Runs the binary to completion, collecting its output (for everything but exec). */
  private async cli(args: string[], signal?: AbortSignal): Promise<Spawned> {
    const child = Bun.spawn([BINARY, ...args], { env: this.env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const abort = () => child.kill("SIGINT");
    if (signal?.aborted) abort();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
      return { code: exitCodeOf(child), stdout, stderr };
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  /** The one JSON document of a --json command; its {error} document becomes a thrown error. */
  private parse<T>(args: string[], result: Spawned): T {
    let document: unknown;
    try {
      document = JSON.parse(result.stdout);
    } catch {
      throw new Error(`sandboxes ${args.join(" ")}: exit ${result.code}, no JSON on stdout; stderr: ${result.stderr.trim()}`);
    }
    const error = (document as { error?: { code: string; message: string } }).error;
    if (error) throw new Error(`sandboxes ${args[0]} (exit ${result.code}): ${error.code}: ${error.message}`);
    return document as T;
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    const args = ["run", "-p", this.name, "--keep", "--json"];
    if (spec.image) args.push("-i", spec.image);
    if (spec.name) args.push("-n", spec.name);
    if (spec.ttlSeconds !== undefined) args.push("--ttl", String(spec.ttlSeconds));
    if (spec.cpus !== undefined) args.push("--cpus", String(spec.cpus));
    if (spec.memoryMb !== undefined) args.push("--memory", `${spec.memoryMb}m`);
    if (spec.network !== undefined) args.push("--network", spec.network.mode, ...spec.network.allow.flatMap((entry) => ["--allow-net", entry]));
    if (spec.pids !== undefined) args.push("--pids", String(spec.pids));
    if (spec.mounts?.length) throw new Error("the CLI has no flag for mounts");
    args.push(...labelFlags(spec.labels), ...envFlags(spec.env), "true");
    const result = await this.cli(args, signal);
    const document = this.parse<{ sandbox_id: string; exit_code: number; stderr: string }>(args, result);
    if (document.exit_code !== 0) throw new Error(`sandboxes run: \`true\` exited ${document.exit_code} in the new sandbox: ${document.stderr}`);
    const record = await this.get(document.sandbox_id);
    if (!record) throw new Error(`sandboxes run kept ${document.sandbox_id}, but sandboxes list -p ${this.name} does not show it`);
    return record;
  }

  async get(id: string): Promise<SandboxRecord | null> {
    return (await this.list({})).find((record) => record.id === id) ?? null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const args = ["list", "-p", this.name, "--json", ...labelFlags(filter.labels)];
    const document = this.parse<{ sandboxes: ListedSandbox[] }>(args, await this.cli(args));
    return document.sandboxes.map((s) => ({
      id: s.id,
      provider: s.provider,
      ...(s.name !== null ? { name: s.name } : {}),
      state: s.state,
      labels: s.labels,
      ...(s.created_at !== null ? { createdAt: s.created_at } : {}),
      ...(s.image !== null ? { image: s.image } : {}),
    }));
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const args = ["exec", id, "-p", this.name, ...envFlags(spec.env)];
    if (spec.cwd) args.push("-w", spec.cwd);
    if (spec.timeoutMs !== undefined) args.push("-t", `${spec.timeoutMs}ms`, "--json");
    args.push("--", ...spec.argv);
    // stdin "ignore" is /dev/null: not a terminal, so the CLI forwards it and the command sees EOF.
    const child = Bun.spawn([BINARY, ...args], {
      env: this.env,
      stdin: spec.stdin ?? "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const abort = () => child.kill("SIGINT");
    if (spec.signal?.aborted) abort();
    spec.signal?.addEventListener("abort", abort, { once: true });
    if (spec.timeoutMs !== undefined) {
      try {
        const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
        const document = this.parse<{ exit_code: number; timed_out: boolean; stdout: string; stderr: string }>(args, { code: exitCodeOf(child), stdout, stderr });
        if (document.stdout) spec.onStdout(Buffer.from(document.stdout));
        if (document.stderr) spec.onStderr(Buffer.from(document.stderr));
        if (stderr) spec.onStderr(Buffer.from(stderr));
        return { exitCode: document.exit_code, timedOut: document.timed_out };
      } finally {
        spec.signal?.removeEventListener("abort", abort);
      }
    }
    // The last stderr bytes, to tell "sandboxes itself failed" (125 + its own line) from a program's 125.
    let tail = "";
    const pump = async (stream: ReadableStream<Uint8Array>, sink: (chunk: Uint8Array) => void, keepTail = false) => {
      for await (const chunk of stream) {
        sink(chunk);
        if (keepTail) tail = (tail + Buffer.from(chunk).toString("utf8")).slice(-4096);
      }
    };
    try {
      await Promise.all([pump(child.stdout, spec.onStdout), pump(child.stderr, spec.onStderr, true), child.exited]);
    } finally {
      spec.signal?.removeEventListener("abort", abort);
    }
    const exitCode = exitCodeOf(child);
    const own = /(?:^|\n)sandboxes: ([^\n]*)\n?$/.exec(tail)?.[1];
    if (exitCode === 125 && own) throw new Error(`sandboxes exec ${id}: ${own}`);
    return { exitCode, timedOut: false };
  }

  async destroy(id: string): Promise<void> {
    const args = ["destroy", "-p", this.name, "--json", id];
    const result = await this.cli(args);
    const document = this.parse<{ destroyed: Array<{ id: string }>; failed: Array<{ ref: string; message: string }>; missing: string[] }>(args, result);
    const done = document.destroyed.some((d) => d.id === id) || document.missing.includes(id);
    if (result.code !== 0 || !done) throw new Error(`sandboxes destroy ${id} (exit ${result.code}): ${result.stdout.trim()} ${result.stderr.trim()}`);
  }

  async putArchive(id: string, dir: string, tar: ArchiveSource): Promise<void> {
    const staging = mkdtempSync(join(this.scratch, "put-"));
    try {
      const untar = Bun.spawn(["tar", "-x", "-f", "-", "-C", staging], { stdin: await wholeArchive(tar), stdout: "ignore", stderr: "pipe" });
      if ((await untar.exited) !== 0) throw new Error(`host tar cannot extract the archive: ${await new Response(untar.stderr).text()}`);
      // DIR/ with the slash: cp puts each entry inside it under its own name (creating DIR).
      const into = `${dir.replace(/\/+$/, "")}/`;
      for (const entry of readdirSync(staging)) {
        const args = ["cp", "-p", this.name, join(staging, entry), `${id}:${into}`];
        const result = await this.cli(args);
        if (result.code !== 0) throw new Error(`sandboxes ${args.join(" ")} (exit ${result.code}): ${result.stderr.trim()}`);
      }
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }

  /**
   * `sandboxes cp` of a one-byte file, then of `bytes`, into the sandbox's `dir`: the exit codes
   * and the binary's peak memory in each (peakMemory: its own, not the test process's).
   */
  async copyPeaks(id: string, dir: string, bytes: Uint8Array): Promise<{ idle: { code: number; peakBytes: number }; big: { code: number; peakBytes: number } }> {
    const small = join(this.scratch, "one-byte");
    const big = join(this.scratch, "big");
    await Bun.write(small, "x");
    await Bun.write(big, bytes);
    try {
      const idle = await peakMemory(["cp", "-p", this.name, small, `${id}:${dir}/one-byte`], this.env);
      return { idle, big: await peakMemory(["cp", "-p", this.name, big, `${id}:${dir}/big`], this.env) };
    } finally {
      rmSync(small, { force: true });
      rmSync(big, { force: true });
    }
  }

  /**
   * `sandboxes exec ID -- sh -c SCRIPT` with one byte, then `bytes`, as its stdin: the results
   * and the binary's peak memory in each (peakMemory).
   */
  async stdinPeaks(id: string, script: string, bytes: Uint8Array): Promise<{ idle: { code: number; peakBytes: number; stderr: string }; big: { code: number; peakBytes: number; stderr: string } }> {
    const small = join(this.scratch, "one-byte-stdin");
    const big = join(this.scratch, "big-stdin");
    await Bun.write(small, "x");
    await Bun.write(big, bytes);
    const args = ["exec", id, "-p", this.name, "--", "sh", "-c", script];
    try {
      const idle = await peakMemory(args, this.env, small);
      return { idle, big: await peakMemory(args, this.env, big) };
    } finally {
      rmSync(small, { force: true });
      rmSync(big, { force: true });
    }
  }

  async getArchive(id: string, path: string, onChunk: (chunk: Uint8Array) => unknown): Promise<void> {
    const staging = mkdtempSync(join(this.scratch, "get-"));
    try {
      const args = ["cp", "-p", this.name, `${id}:${path}`, `${staging}/`];
      const result = await this.cli(args);
      if (result.code !== 0) throw new Error(`sandboxes ${args.join(" ")} (exit ${result.code}): ${result.stderr.trim()}`);
      const entries = readdirSync(staging);
      if (entries.length !== 1 || entries[0] !== basename(path)) {
        throw new Error(`sandboxes cp ${id}:${path} wrote ${JSON.stringify(entries)}, expected ["${basename(path)}"]`);
      }
      const pack = Bun.spawn(["tar", "-c", "-f", "-", "-C", staging, entries[0]!], { stdout: "pipe", stderr: "pipe" });
      const [bytes, errors, code] = await Promise.all([new Response(pack.stdout).bytes(), new Response(pack.stderr).text(), pack.exited]);
      if (code !== 0) throw new Error(`host tar cannot pack ${entries[0]}: ${errors}`);
      await onChunk(bytes);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const args = ["shell", id, "-p", this.name, ...envFlags(spec.env)];
    if (spec.cwd) args.push("-w", spec.cwd);
    const output = new PtyOutput();
    const child = Bun.spawn([BINARY, ...args], {
      env: { ...this.env, TERM: "xterm-256color" },
      terminal: {
        cols: spec.cols,
        rows: spec.rows,
        data: (_terminal, chunk) => output.push(new Uint8Array(chunk)),
        exit: () => terminalClosed(),
      },
    });
    const terminal = child.terminal!;
    let terminalClosed: () => void = () => {};
    const drained = new Promise<void>((resolve) => (terminalClosed = resolve));
    // Typed into the login shell `shell` opens; the terminal keeps it until the shell reads.
    terminal.write(`exec ${spec.argv.map(shellQuote).join(" ")}\n`);
    const exited = child.exited.then(() => exitCodeOf(child));
    void exited.finally(() => terminal.close());
    return {
      write: (data) => terminal.write(data),
      resize: (cols, rows) => terminal.resize(cols, rows),
      output: output.endWhen(exited.then(() => Promise.race([drained, Bun.sleep(200)]))),
      exited,
      kill: async () => {
        child.kill("SIGHUP");
        await exited;
      },
    };
  }

  async close(): Promise<void> {
    rmSync(this.home, { recursive: true, force: true });
  }
}
