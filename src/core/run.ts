import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename, dirname, extname, posix, resolve } from "node:path";
import { byExtension, byName, defaultFileName, type Language, languageNames } from "../lang/languages";
import type { CreateSpec, ExecOutcome, ExecSpec, Provider, SandboxRecord } from "../providers/types";
import type { Settings } from "./config";
import { SandboxesError } from "../base/errors";
import { formatArgs, type HostArchive, hostTar, packFile, renameArgs, skippedNotice } from "./archive";
import { checkSandboxName, checkSupport, createOn, findRunning, hold, keptNotice, openProvider, refuseTakenName, type SandboxSpec, throwIfAborted } from "./lifecycle";
import { downloadPath, localTarget, probe, requireFiles, sendArchive, uploadPath } from "./transfer";
import { shellQuote } from "../base/quote";
import { readAtMost } from "../base/read-file";
import { checkTimeoutMs } from "./timeout";
import { prepareWorkdir } from "./workdir";
import { checkRuntime, InlineRuntimeCheck } from "./runtime-check";

export type CodeSource =
  | { kind: "command"; line: string }
  | { kind: "file"; path: string; language: Language }
  | { kind: "stdin"; code: Uint8Array; language: Language };

export interface OutputSink {
  /** May return a promise, resolved once the chunk is out: see ExecSpec.onStdout. */
  stdout(chunk: Uint8Array): unknown;
  stderr(chunk: Uint8Array): unknown;
  /** A human message (kept sandbox id, reuse notice); goes to stderr. */
  info(message: string): void;
  /** Set when stdout() only copies to this descriptor (see ExecSpec.stdoutFd). */
  stdoutFd?: number;
  /** A line the sandbox asked us to show (a blocked destination): `sandboxes: …` on stderr. */
  notice?(message: string): void;
  /** Progress of slow steps (image pulls); set only when a person is watching a terminal. */
  progress?(message: string): void;
}

/** What `sandboxes run` (and the library's and MCP's one-off runs) ask for; leaving a field out means "no". */
export interface RunRequest extends SandboxSpec {
  env: Record<string, string>;
  name?: string;
  /** Run in a running sandbox with this name/labels when there is one; one created for it is kept. */
  reuse?: boolean;
  keep?: boolean;
  timeoutMs?: number;
  workdir?: string;
  deps?: boolean;
  uploads?: Array<{ local: string; remote: string }>;
  downloads?: Array<{ remote: string; local: string }>;
  source: CodeSource;
  args?: string[];
  stdin?: ReadableStream<Uint8Array> | Uint8Array;
  signal: AbortSignal;
}

/** What a run reports; its output went to the OutputSink as it came. */
export interface RunReport {
  sandboxId: string;
  provider: string;
  exitCode: number;
  timedOut: boolean;
  durationMs: number;
  kept: boolean;
  reused: boolean;
  /** The program was killed for exceeding this limit of its sandbox. */
  limitHit?: ExecOutcome["limitHit"];
}

/** A RunRequest with every field it may leave out filled in. */
type Run = RunRequest & Required<Pick<RunRequest, "reuse" | "keep" | "deps" | "uploads" | "downloads" | "args">>;

/** Picks the language of a file, or fails with the list of languages and the --lang hint. */
export function languageFor(path: string, langFlag?: string): Language {
  if (langFlag) {
    const language = byName(langFlag);
    if (!language) throw new SandboxesError("unknown_language", `unknown language "${langFlag}"; known: ${languageNames().join(", ")}`, "usage");
    return language;
  }
  const extension = extname(path);
  const language = extension ? byExtension(extension) : undefined;
  if (!language) {
    throw new SandboxesError(
      "unknown_extension",
      `cannot tell the language of ${path}${extension ? ` (extension ${extension})` : " (no extension)"}: pass --lang with one of ${languageNames().join(", ")}`,
      "usage",
    );
  }
  return language;
}

/**
 * The most code `run` takes as its program (--file, stdin): it is held in memory and
 * written into the sandbox whole. A program is far smaller; data goes in with --upload. Without a
 * bound, `--file /dev/zero` (or `< /dev/zero`) read until the host ran out of memory.
 */
export const MAX_CODE_BYTES = 64 * 1024 * 1024;

function codeTooLarge(what: string): SandboxesError {
  return new SandboxesError("code_too_large", `${what} is larger than ${MAX_CODE_BYTES / 1024 / 1024} MiB, the most run takes as a program`, "usage", "put large files in the sandbox with --upload and run a smaller program");
}

/** Checks a --file path before any sandbox exists, so bad input never costs a sandbox. */
export function checkFile(path: string): void {
  if (!existsSync(path)) throw new SandboxesError("file_not_found", `file not found: ${path}`, "usage", "check the path given to --file");
  const stats = statSync(path);
  if (stats.isDirectory()) throw new SandboxesError("file_not_found", `${path} is a directory, not a file: pass the program's main file to --file`, "usage");
  if (stats.isFile() && stats.size > MAX_CODE_BYTES) throw codeTooLarge(path);
}

/**
 * A --file's bytes, at most MAX_CODE_BYTES: a regular file by its size, anything else (a pipe
 * from `<(…)`, a device) read until it ends or passes the bound.
 */
export function readCodeFile(path: string): Uint8Array {
  const bytes = readAtMost({ closeSync, openSync, readFileSync, readSync, statSync }, path, MAX_CODE_BYTES);
  if (!bytes) throw codeTooLarge(path);
  return bytes;
}

/** Code from a stream (stdin), at most MAX_CODE_BYTES. */
export async function readCode(stream: ReadableStream<Uint8Array>, what: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += chunk.length;
    if (total > MAX_CODE_BYTES) throw codeTooLarge(what);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

export async function runCode(settings: Settings, request: RunRequest, sink: OutputSink): Promise<RunReport> {
  const started = performance.now();
  const run: Run = { ...request, reuse: request.reuse ?? false, keep: request.keep ?? false, deps: request.deps ?? false, uploads: request.uploads ?? [], downloads: request.downloads ?? [], args: request.args ?? [] };
  checkTimeoutMs(run.timeoutMs);
  checkSandboxName(run.name);
  // Where --download writes, checked before the program runs rather than after it.
  for (const download of run.downloads) localTarget(download.local);
  const { provider, choice } = await openProvider(settings, run.provider);
  if (choice.image && !run.image) sink.info(`using ${choice.name} (${choice.reason}) with image ${choice.image}; choose another with --image`);
  const needsFiles = run.source.kind !== "command" || run.uploads.length > 0 || run.downloads.length > 0;
  if (needsFiles) requireFiles(provider);
  const spec = createSpec(run, sink);
  checkSupport(provider, spec, sink.info);
  if (canRunOnce(provider, run)) return runOnce(provider, spec, run, sink, started);

  let reused: SandboxRecord | undefined;
  if (run.reuse) {
    reused = await findReusable(provider, run);
    if (reused) sink.info(`reusing sandbox ${reused.id}`);
  } else {
    await refuseTakenName(provider, run.name, "add --reuse to run in it, or pick another --name");
  }
  throwIfAborted(run.signal);
  // A sandbox created by --reuse is kept: the next --reuse run is meant to find it.
  const keep = run.keep || run.reuse;
  const lease = reused ? { provider, record: reused, created: false } : await createOn(settings, provider, spec, { register: keep, signal: run.signal });
  return hold(settings, lease, { signal: run.signal, notify: sink.info, keep: () => keep }, async () => {
    const outcome = await runInSandbox(provider, lease.record.id, run, sink);
    for (const download of run.downloads) {
      throwIfAborted(run.signal);
      const { skipped } = await downloadPath(provider, lease.record.id, download.remote, download.local, run.signal);
      const notice = skippedNotice(skipped, download.remote);
      if (notice) sink.info(notice);
    }
    throwIfAborted(run.signal);
    if (lease.created && keep) sink.info(keptNotice(lease));
    return {
      sandboxId: lease.record.id,
      provider: provider.name,
      exitCode: outcome.exitCode,
      timedOut: outcome.timedOut,
      durationMs: Math.round(performance.now() - started),
      kept: lease.created ? keep : true,
      reused: !lease.created,
      limitHit: outcome.limitHit,
    };
  });
}

/**
 * A plain command in a throwaway sandbox: create, exec and destroy would do nothing else, so a
 * provider that can do all three in one go (capabilities.oneShot) saves their round trips. So
 * does a file or code on stdin where the sandbox can start with it (capabilities.oneShotFiles).
 * A --ttl stays on the normal path: it must bound the sandbox even if this process dies.
 */
function canRunOnce(provider: Provider, options: Run): boolean {
  return (
    provider.capabilities.oneShot &&
    provider.runOnce !== undefined &&
    (options.source.kind === "command" || provider.capabilities.oneShotFiles === true) &&
    options.uploads.length === 0 &&
    options.downloads.length === 0 &&
    !options.deps &&
    !options.keep &&
    !options.reuse &&
    options.name === undefined &&
    options.ttlSeconds === undefined &&
    // One path for -w on every provider (core/workdir.ts): the engine would create it as root.
    options.workdir === undefined
  );
}

async function runOnce(provider: Provider, spec: CreateSpec, options: Run, sink: OutputSink, started: number): Promise<RunReport> {
  const source = options.source;
  const program = source.kind === "command" ? { create: spec, argv: commandArgv(source.line, options.args), check: undefined } : codeInOneGo(spec, options, source);
  const check = program.check;
  const stderr = (chunk: Uint8Array) => sink.stderr(chunk);
  const outcome = await provider.runOnce!(program.create, execSpec(program.argv, options, check ? { ...sink, stderr: check.stderr(stderr) } : sink, options.workdir));
  await check?.flush(stderr);
  throwIfAborted(options.signal);
  check?.verdict();
  reportLimitHit(outcome, sink, options.memoryMb);
  return {
    sandboxId: outcome.id,
    provider: provider.name,
    exitCode: outcome.exitCode,
    timedOut: outcome.timedOut,
    durationMs: Math.round(performance.now() - started),
    kept: false,
    reused: false,
    limitHit: outcome.limitHit,
  };
}

/**
 * A file (or code on stdin) run in one go: one one-shot sandbox that starts with the code in
 * /tmp, where the program's shell first asks whether the runtime is there (the same question,
 * and the same answer, as in a kept sandbox: InlineRuntimeCheck).
 */
function codeInOneGo(spec: CreateSpec, options: Run, source: Exclude<CodeSource, { kind: "command" }>): { create: CreateSpec; argv: string[]; check: InlineRuntimeCheck } {
  const check = new InlineRuntimeCheck(source.language, options.image);
  const codeDir = freshCodeDir();
  const fileName = codeFileName(source);
  const content = source.kind === "file" ? readCodeFile(source.path) : source.code;
  return {
    create: { ...spec, files: [{ path: posix.join(codeDir, fileName), content }] },
    argv: codeArgv(codeDir, fileName, source.language.run, options.args, { before: check.script }),
    check,
  };
}

function createSpec(options: Run, sink: OutputSink): CreateSpec {
  return {
    name: options.name,
    image: options.image,
    labels: { ...options.labels },
    env: options.env,
    network: options.network,
    cpus: options.cpus,
    memoryMb: options.memoryMb,
    pids: options.pids,
    ttlSeconds: options.ttlSeconds,
    onProgress: sink.progress,
  };
}


/** The argv of a plain command line and its extra arguments. */
export function commandArgv(line: string, args: string[]): string[] {
  return ["sh", "-c", [line, ...args.map(shellQuote)].join(" ")];
}

/** The name the code's file has in the sandbox: the file's own, or the language's default for code on stdin. */
function codeFileName(source: Exclude<CodeSource, { kind: "command" }>): string {
  return source.kind === "file" ? basename(source.path) : defaultFileName(source.language);
}

/** A fresh directory under /tmp for a program's code. */
export function freshCodeDir(): string {
  return posix.join("/tmp", `sandboxes-run-${Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString("hex")}`);
}

/**
 * The argv that runs the code file ($F) with a language's run script, from the code's directory
 * unless `cd` is false, after the shell code `before`.
 */
export function codeArgv(codeDir: string, fileName: string, runScript: string, args: string[], { cd = true, before = "" }: { cd?: boolean; before?: string } = {}): string[] {
  const script = `${before}F=${shellQuote(posix.join(codeDir, fileName))}; ${cd ? `cd ${shellQuote(codeDir)} || exit 125; ` : ""}${runScript}`;
  return ["sh", "-c", script, "sandboxes-run", ...args];
}

function findReusable(provider: Provider, options: Run): Promise<SandboxRecord | undefined> {
  if (!options.name && Object.keys(options.labels).length === 0) {
    throw new SandboxesError("reuse_without_key", "--reuse needs --name or at least one --label to find the sandbox", "usage");
  }
  return findRunning(provider, options);
}

async function runInSandbox(provider: Provider, id: string, options: Run, sink: OutputSink): Promise<ExecOutcome> {
  const source = options.source;
  // Whether the sandbox has the language's runtime: asked while the files go up, each a round
  // trip to the sandbox that does not need the other. Its answer counts after theirs.
  const runtimeChecked = source.kind === "command" ? undefined : checkRuntime((script) => probe(provider, id, script), source.language, options.image);
  runtimeChecked?.catch(() => {});
  for (const upload of options.uploads) {
    throwIfAborted(options.signal);
    await uploadPath(provider, id, upload.local, upload.remote, options.signal);
  }
  if (options.workdir !== undefined) {
    // After the uploads, which may have made it: a run's own sandbox gets -w created.
    await prepareWorkdir(provider, id, options.workdir, "create", options.signal);
    throwIfAborted(options.signal);
  }
  if (source.kind === "command") return execChecked(provider, id, commandArgv(source.line, options.args), options, sink, options.workdir);
  const language = source.language;
  const codeDir = freshCodeDir();
  const fileName = codeFileName(source);
  if (source.kind === "file") {
    if (options.deps) {
      await uploadProjectDir(provider, id, dirname(resolve(source.path)), codeDir);
    } else {
      await provider.putArchive!(id, codeDir, await packFile(fileName, readCodeFile(source.path)));
    }
  } else {
    if (options.deps) await uploadProjectDir(provider, id, process.cwd(), codeDir);
    await provider.putArchive!(id, codeDir, await packFile(fileName, source.code));
  }
  throwIfAborted(options.signal);
  await runtimeChecked;
  let runScript = language.run;
  const env = { ...options.env };
  if (options.deps) {
    const manifest = await findManifest(provider, id, language, codeDir);
    if (manifest) {
      sink.info(`installing dependencies from ${manifest.manifest}…`);
      const install = await provider.exec(id, {
        argv: ["sh", "-c", manifest.install],
        env,
        cwd: codeDir,
        onStdout: sink.stderr,
        onStderr: sink.stderr,
        signal: options.signal,
      });
      throwIfAborted(options.signal);
      if (install.exitCode !== 0) {
        throw new SandboxesError("deps_failed", `installing dependencies from ${manifest.manifest} failed (exit ${install.exitCode}): see the output above`, "user");
      }
      Object.assign(env, manifest.env ?? {});
      if (manifest.run) runScript = manifest.run;
    } else {
      sink.info(`--deps: no ${(language.deps ?? []).map((d) => d.manifest).join(" or ") || "dependency manifest"} beside the file; nothing to install`);
    }
  }
  return execChecked(provider, id, codeArgv(codeDir, fileName, runScript, options.args, { cd: !options.workdir }), { ...options, env }, sink, options.workdir);
}

async function execChecked(provider: Provider, id: string, argv: string[], options: Run, sink: OutputSink, cwd?: string): Promise<ExecOutcome> {
  const outcome = await provider.exec(id, execSpec(argv, options, sink, cwd));
  throwIfAborted(options.signal);
  reportLimitHit(outcome, sink, options.memoryMb);
  return outcome;
}

/** The one line that says why the program died when a limit of its sandbox killed it. */
export function reportLimitHit(outcome: ExecOutcome, sink: OutputSink, memoryMb?: number): void {
  if (outcome.limitHit !== "memory") return;
  const flag = memoryMb === undefined ? "" : ` (--memory ${memoryMb % 1024 === 0 ? `${memoryMb / 1024}g` : `${memoryMb}m`})`;
  sink.info(`the program was killed: it exceeded the memory limit${flag}`);
}

/** The program's own command: its env, bounds, stdin and live output. */
export function execSpec(
  argv: string[],
  options: { env: Record<string, string>; timeoutMs?: number; stdin?: ExecSpec["stdin"]; signal: AbortSignal },
  sink: OutputSink,
  cwd?: string,
): ExecSpec {
  return { argv, env: options.env, cwd, timeoutMs: options.timeoutMs, stdin: options.stdin, onStdout: sink.stdout, onStderr: sink.stderr, stdoutFd: sink.stdoutFd, onNotice: sink.notice ?? sink.info, signal: options.signal };
}

async function uploadProjectDir(provider: Provider, id: string, dir: string, codeDir: string): Promise<void> {
  // The project beside the file, without what dependency managers rebuild anyway.
  await sendArchive(provider, id, posix.dirname(codeDir), packProject(dir, basename(codeDir)));
}

function packProject(dir: string, entryName: string): HostArchive {
  const excludes = ["node_modules", "target", ".git", ".venv", "__pycache__", ".sandboxes-deps"].map((e) => `--exclude=./${e}`);
  return hostTar([...formatArgs(), ...excludes, ...renameArgs("\\.", entryName), "-C", dir, "."], dir);
}

async function findManifest(provider: Provider, id: string, language: Language, codeDir: string) {
  for (const candidate of language.deps ?? []) {
    const { code } = await probe(provider, id, 'test -f "$1"', posix.join(codeDir, candidate.manifest));
    if (code === 0) return candidate;
  }
  return undefined;
}


