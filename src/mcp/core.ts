/**
 * The MCP server's one door into core: everything the tools do to sandboxes goes through here,
 * so the server can be re-pointed when core's lifecycle changes without touching the tools.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import type { Settings } from "../core/config";
import { SandboxesError } from "../base/errors";
import { listSandboxes } from "../core/inventory";
import { checkNetworkSupport } from "../core/network";
import { shellQuote } from "../base/quote";
import { Registry } from "../core/registry";
import { resolveSandbox } from "../core/resolve";
import { checkPids, runCode, type OutputSink } from "../core/run";
import { chooseProvider, loadProvider } from "../core/select";
import { probe, requireFiles } from "../core/transfer";
import { packFile } from "../core/archive";
import { defaultFileName, type Language } from "../lang/languages";
import type { NetworkPolicy, Provider, SandboxRecord } from "../providers/types";

/** What `sandboxes mcp`'s flags set for every sandbox the session creates. */
export interface SessionDefaults {
  provider?: string;
  image?: string;
  labels: Record<string, string>;
  network?: NetworkPolicy;
  cpus?: number;
  memoryMb?: number;
  pids?: number;
  ttlSeconds?: number;
}

export type Program = { kind: "command"; line: string } | { kind: "code"; code: Uint8Array; language: Language };

export interface ProgramRun {
  program: Program;
  args: string[];
  env: Record<string, string>;
  stdin?: Uint8Array;
  timeoutMs?: number;
  signal: AbortSignal;
}

export interface Outcome {
  sandboxId: string;
  provider: string;
  exitCode: number;
  timedOut: boolean;
  durationMs: number;
}

export interface Located {
  provider: Provider;
  record: SandboxRecord;
}

/** A program in a sandbox of its own, created and destroyed by core's `run` (also on abort). */
export async function runInFreshSandbox(settings: Settings, defaults: SessionDefaults, run: ProgramRun, sink: OutputSink): Promise<Outcome> {
  const source = run.program.kind === "command" ? { kind: "command" as const, line: run.program.line } : { kind: "stdin" as const, code: run.program.code, language: run.program.language };
  const result = await runCode(
    settings,
    {
      provider: defaults.provider,
      image: defaults.image,
      env: run.env,
      labels: { ...defaults.labels },
      reuse: false,
      keep: false,
      timeoutMs: run.timeoutMs,
      deps: false,
      uploads: [],
      downloads: [],
      source,
      args: run.args,
      stdin: run.stdin,
      network: defaults.network,
      cpus: defaults.cpus,
      memoryMb: defaults.memoryMb,
      pids: defaults.pids,
      ttlSeconds: defaults.ttlSeconds,
      signal: run.signal,
    },
    sink,
  );
  return { sandboxId: result.sandboxId, provider: result.provider, exitCode: result.exitCode, timedOut: result.timedOut, durationMs: result.durationMs };
}

/** A program in an existing sandbox; code goes to a fresh directory under /tmp first, named as `run` names code from stdin. */
export async function runInSandbox(at: Located, run: ProgramRun, sink: OutputSink): Promise<Outcome> {
  const started = performance.now();
  const { provider, record } = at;
  let argv: string[];
  if (run.program.kind === "command") {
    argv = ["sh", "-c", [run.program.line, ...run.args.map(shellQuote)].join(" ")];
  } else {
    requireFiles(provider);
    const dir = posix.join("/tmp", `sandboxes-mcp-${randomBytes(4).toString("hex")}`);
    const fileName = defaultFileName(run.program.language);
    await provider.putArchive!(record.id, dir, await packFile(fileName, run.program.code));
    const script = `F=${shellQuote(posix.join(dir, fileName))}; cd ${shellQuote(dir)} || exit 125; ${run.program.language.run}`;
    argv = ["sh", "-c", script, "sandboxes-run", ...run.args];
  }
  const outcome = await provider.exec(record.id, {
    argv,
    env: run.env,
    timeoutMs: run.timeoutMs,
    stdin: run.stdin,
    onStdout: sink.stdout,
    onStderr: sink.stderr,
    signal: run.signal,
  });
  return { sandboxId: record.id, provider: provider.name, exitCode: outcome.exitCode, timedOut: outcome.timedOut, durationMs: Math.round(performance.now() - started) };
}

export interface NewSandbox {
  provider?: string;
  image?: string;
  name?: string;
  labels: Record<string, string>;
}

/** Creates a sandbox and records it in the registry so the CLI finds it by id or name. */
export async function createSandbox(settings: Settings, defaults: SessionDefaults, spec: NewSandbox, signal: AbortSignal, onProgress?: (message: string) => void): Promise<Located> {
  const provider = await loadProvider(settings, (await chooseProvider(settings, spec.provider ?? defaults.provider)).name);
  checkNetworkSupport(provider.name, provider.capabilities, defaults.network);
  checkPids(provider, defaults.pids);
  if (spec.name !== undefined) {
    const clash = (await provider.list({})).find((r) => r.name === spec.name);
    if (clash) throw new SandboxesError("name_in_use", `a sandbox named "${spec.name}" already exists (${clash.id})`, "user", "pick another name, or pass its id as sandbox_id");
  }
  const record = await provider.create(
    {
      name: spec.name,
      image: spec.image ?? defaults.image,
      labels: spec.labels,
      env: {},
      network: defaults.network,
      cpus: defaults.cpus,
      memoryMb: defaults.memoryMb,
      pids: defaults.pids,
      ttlSeconds: defaults.ttlSeconds,
      onProgress,
    },
    signal,
  );
  new Registry(settings.stateDir).add({ id: record.id, provider: provider.name, name: spec.name, labels: spec.labels, createdAt: record.createdAt ?? new Date().toISOString() });
  return { provider, record };
}

export function findSandbox(settings: Settings, ref: string): Promise<Located> {
  return resolveSandbox(settings, ref);
}

export async function destroySandbox(settings: Settings, at: Located): Promise<void> {
  await at.provider.destroy(at.record.id);
  new Registry(settings.stateDir).remove(at.provider.name, at.record.id);
}

export function listAll(settings: Settings, filter: { provider?: string; labels: Record<string, string> }) {
  return listSandboxes(settings, filter);
}

/** Writes one file, creating its parent directories. */
export async function writeFile(at: Located, path: string, bytes: Uint8Array): Promise<void> {
  requireFiles(at.provider);
  const target = posix.resolve("/", path);
  if (target === "/") throw new SandboxesError("bad_path", `"${path}" is not a file path`, "usage");
  await at.provider.putArchive!(at.record.id, posix.dirname(target), await packFile(posix.basename(target), bytes));
}

/** Reads one regular file of at most `limit` bytes. */
export async function readFile(at: Located, path: string, limit: number): Promise<Uint8Array> {
  requireFiles(at.provider);
  const target = posix.resolve("/", path);
  const { stdout } = await probe(at.provider, at.record.id, 'if [ -d "$1" ]; then echo dir; elif [ -f "$1" ]; then wc -c < "$1"; else echo none; fi', target);
  const answer = stdout.trim();
  if (answer === "dir") throw new SandboxesError("not_a_file", `${target} is a directory in sandbox ${at.record.id}`, "user", "read one file at a time; list a directory with the run tool (ls)");
  if (answer === "none" || answer === "") throw new SandboxesError("file_not_found", `${target}: no such file in sandbox ${at.record.id}`, "user");
  const size = Number(answer);
  if (size > limit) throw new SandboxesError("file_too_large", `${target} is ${size} bytes, more than the ${limit}-byte limit of read_file`, "user", "read part of it with the run tool (head -c, tail -c, split)");
  const files = await new Bun.Archive(await at.provider.getArchive!(at.record.id, target)).files();
  const file = files.get(posix.basename(target)) ?? [...files.values()][0];
  if (!file) throw new SandboxesError("file_transfer_failed", `could not read ${target} from sandbox ${at.record.id}`, "provider");
  return new Uint8Array(await file.arrayBuffer());
}
