/**
 * The MCP server's one door into core: everything the tools do to sandboxes goes through here,
 * so the server can be re-pointed when core's lifecycle changes without touching the tools.
 */
import { posix } from "node:path";
import type { Settings } from "../core/config";
import { SandboxesError } from "../base/errors";
import { listSandboxes } from "../core/inventory";
import * as lifecycle from "../core/lifecycle";
import type { Lease, ResolvedSandbox, SandboxSpec } from "../core/lifecycle";
import { resolveSandbox } from "../core/resolve";
import { codeArgv, commandArgv, freshCodeDir, runCode, type OutputSink, type RunReport } from "../core/run";
import { probe, requireFiles } from "../core/transfer";
import { packFile } from "../core/archive";
import { defaultFileName, type Language } from "../lang/languages";

/** What `sandboxes mcp`'s flags set for every sandbox the session creates. */
export type SessionDefaults = SandboxSpec;

export type Program = { kind: "command"; line: string } | { kind: "code"; code: Uint8Array; language: Language };

export interface ProgramRun {
  program: Program;
  args: string[];
  env: Record<string, string>;
  stdin?: Uint8Array;
  timeoutMs?: number;
  signal: AbortSignal;
}

export type Outcome = Pick<RunReport, "sandboxId" | "provider" | "exitCode" | "timedOut" | "durationMs">;

/** A program in a sandbox of its own, created and destroyed by core's `run` (also on abort). */
export function runInFreshSandbox(settings: Settings, defaults: SessionDefaults, run: ProgramRun, sink: OutputSink): Promise<Outcome> {
  const source = run.program.kind === "command" ? { kind: "command" as const, line: run.program.line } : { kind: "stdin" as const, code: run.program.code, language: run.program.language };
  return runCode(settings, { ...defaults, labels: { ...defaults.labels }, env: run.env, timeoutMs: run.timeoutMs, source, args: run.args, stdin: run.stdin, signal: run.signal }, sink);
}

/** A program in an existing sandbox; code goes to a fresh directory under /tmp first, named as `run` names code from stdin. */
export async function runInSandbox(at: ResolvedSandbox, run: ProgramRun, sink: OutputSink): Promise<Outcome> {
  const started = performance.now();
  const { provider, record } = at;
  let argv: string[];
  if (run.program.kind === "command") {
    argv = commandArgv(run.program.line, run.args);
  } else {
    requireFiles(provider);
    const dir = freshCodeDir();
    const fileName = defaultFileName(run.program.language);
    await provider.putArchive!(record.id, dir, await packFile(fileName, run.program.code));
    argv = codeArgv(dir, fileName, run.program.language.run, run.args);
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
export function createSandbox(settings: Settings, defaults: SessionDefaults, spec: NewSandbox, signal: AbortSignal, onProgress?: (message: string) => void): Promise<Lease> {
  const { provider: _, ...limits } = defaults;
  return lifecycle.createSandbox(
    settings,
    { provider: spec.provider ?? defaults.provider },
    { ...limits, name: spec.name, image: spec.image ?? defaults.image, labels: spec.labels, env: {}, onProgress },
    { register: true, signal, prepare: (provider) => lifecycle.refuseTakenName(provider, spec.name, "pick another name, or pass its id as sandbox_id") },
  );
}

export function findSandbox(settings: Settings, ref: string): Promise<ResolvedSandbox> {
  return resolveSandbox(settings, ref);
}

export function listAll(settings: Settings, filter: { provider?: string; labels: Record<string, string> }) {
  return listSandboxes(settings, filter);
}

/** Writes one file, creating its parent directories. */
export async function writeFile(at: ResolvedSandbox, path: string, bytes: Uint8Array): Promise<void> {
  requireFiles(at.provider);
  const target = posix.resolve("/", path);
  if (target === "/") throw new SandboxesError("bad_path", `"${path}" is not a file path`, "usage");
  await at.provider.putArchive!(at.record.id, posix.dirname(target), await packFile(posix.basename(target), bytes));
}

/** What a tar of one file adds to it: its header, long-name records, padding and end blocks. */
const TAR_OVERHEAD_BYTES = 64 * 1024;

/** Reads one regular file of at most `limit` bytes. */
export async function readFile(at: ResolvedSandbox, path: string, limit: number): Promise<Uint8Array> {
  requireFiles(at.provider);
  const target = posix.resolve("/", path);
  const { stdout } = await probe(at.provider, at.record.id, 'if [ -d "$1" ]; then echo dir; elif [ -f "$1" ]; then wc -c < "$1"; else echo none; fi', target);
  const answer = stdout.trim();
  if (answer === "dir") throw new SandboxesError("not_a_file", `${target} is a directory in sandbox ${at.record.id}`, "user", "read one file at a time; list a directory with the run tool (ls)");
  if (answer === "none" || answer === "") throw new SandboxesError("file_not_found", `${target}: no such file in sandbox ${at.record.id}`, "user");
  const size = Number(answer);
  if (size > limit) throw new SandboxesError("file_too_large", `${target} is ${size} bytes, more than the ${limit}-byte limit of read_file`, "user", "read part of it with the run tool (head -c, tail -c, split)");
  // The size was checked first, but the program may still be writing to the file: the archive is
  // read with a bound (the limit and room for tar's headers), and past it the read stops.
  const chunks: Uint8Array[] = [];
  let received = 0;
  await at.provider.getArchive!(at.record.id, target, (chunk) => {
    received += chunk.length;
    if (received > limit + TAR_OVERHEAD_BYTES) throw new SandboxesError("file_too_large", `${target} grew past the ${limit}-byte limit of read_file while it was read`, "user", "read part of it with the run tool (head -c, tail -c, split)");
    chunks.push(chunk);
  });
  const files = await new Bun.Archive(Buffer.concat(chunks)).files();
  const file = files.get(posix.basename(target)) ?? [...files.values()][0];
  if (!file) throw new SandboxesError("file_transfer_failed", `could not read ${target} from sandbox ${at.record.id}`, "provider");
  return new Uint8Array(await file.arrayBuffer());
}
