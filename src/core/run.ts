import { existsSync, readFileSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, extname, posix, resolve } from "node:path";
import { byExtension, byName, defaultFileName, type Language, languageNames } from "../lang/languages";
import type { CreateSpec, ExecOutcome, NetworkPolicy, ExecSpec, Provider, SandboxRecord } from "../providers/types";
import type { Settings } from "./config";
import { InterruptedError, SandboxesError, type StopReason } from "../base/errors";
import { formatArgs, packFile, renameArgs } from "./archive";
import { checkNetworkSupport, HOST_NETWORK_WARNING } from "./network";
import { Registry } from "./registry";
import { chooseProvider, loadProvider } from "./select";
import { downloadPath, probe, requireFiles, uploadPath } from "./transfer";
import { shellQuote } from "../base/quote";
import { checkTimeoutMs } from "./timeout";
import { prepareWorkdir } from "./workdir";

export type CodeSource =
  | { kind: "command"; line: string }
  | { kind: "file"; path: string; language: Language }
  | { kind: "stdin"; code: Uint8Array; language: Language };

export interface OutputSink {
  stdout(chunk: Uint8Array): void;
  stderr(chunk: Uint8Array): void;
  /** A human message (kept sandbox id, reuse notice); goes to stderr. */
  info(message: string): void;
  /** Set when stdout() only copies to this descriptor (see ExecSpec.stdoutFd). */
  stdoutFd?: number;
  /** A line the sandbox asked us to show (a blocked destination): `sandboxes: …` on stderr. */
  notice?(message: string): void;
  /** Progress of slow steps (image pulls); set only when a person is watching a terminal. */
  progress?(message: string): void;
}

export interface RunOptions {
  provider?: string;
  image?: string;
  env: Record<string, string>;
  labels: Record<string, string>;
  name?: string;
  reuse: boolean;
  keep: boolean;
  timeoutMs?: number;
  workdir?: string;
  deps: boolean;
  uploads: Array<{ local: string; remote: string }>;
  downloads: Array<{ remote: string; local: string }>;
  source: CodeSource;
  args: string[];
  stdin?: ReadableStream<Uint8Array> | Uint8Array;
  network?: NetworkPolicy;
  cpus?: number;
  memoryMb?: number;
  pids?: number;
  ttlSeconds?: number;
  signal: AbortSignal;
}

export interface RunResult {
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

/** Checks a --file path before any sandbox exists, so bad input never costs a sandbox. */
export function checkFile(path: string): void {
  if (!existsSync(path)) throw new SandboxesError("file_not_found", `file not found: ${path}`, "usage", "check the path given to --file");
  if (statSync(path).isDirectory()) throw new SandboxesError("file_not_found", `${path} is a directory, not a file: pass the program's main file to --file`, "usage");
}

export async function runCode(settings: Settings, options: RunOptions, sink: OutputSink): Promise<RunResult> {
  const started = performance.now();
  checkTimeoutMs(options.timeoutMs);
  const choice = await chooseProvider(settings, options.provider);
  const provider = await loadProvider(settings, choice.name);
  if (choice.image && !options.image) sink.info(`using ${choice.name} (${choice.reason}) with image ${choice.image}; choose another with --image`);
  const registry = new Registry(settings.stateDir);
  const needsFiles = options.source.kind !== "command" || options.uploads.length > 0 || options.downloads.length > 0;
  if (needsFiles) requireFiles(provider);
  checkCapabilities(provider, options, sink);
  if (canRunOnce(provider, options)) return runOnce(provider, options, sink, started);

  let sandbox: SandboxRecord | undefined;
  let reused = false;
  if (options.reuse) {
    sandbox = await findReusable(provider, options);
    reused = sandbox !== undefined;
    if (reused) sink.info(`reusing sandbox ${sandbox!.id}`);
  } else if (options.name) {
    const clash = (await provider.list({})).find((r) => r.name === options.name);
    if (clash) throw new SandboxesError("name_in_use", `a sandbox named "${options.name}" already exists (${clash.id})`, "user", "add --reuse to run in it, or pick another --name");
  }
  throwIfAborted(options.signal);

  let created = false;
  // A sandbox created by --reuse is kept: the next --reuse run is meant to find it.
  const keep = options.keep || options.reuse;
  try {
    if (!sandbox) {
      sandbox = await provider.create(createSpec(options, sink), options.signal);
      created = true;
      if (keep) {
        registry.add({ id: sandbox.id, provider: provider.name, name: options.name, labels: options.labels, createdAt: new Date().toISOString() });
      }
      throwIfAborted(options.signal);
    }
    const outcome = await runInSandbox(provider, sandbox.id, options, sink);
    for (const download of options.downloads) {
      throwIfAborted(options.signal);
      await downloadPath(provider, sandbox.id, download.remote, download.local);
    }
    throwIfAborted(options.signal);
    const kept = created ? keep : true;
    if (created && keep) sink.info(`kept sandbox ${sandbox.id} (provider ${provider.name}); destroy it with: sandboxes destroy ${sandbox.id}`);
    return {
      sandboxId: sandbox.id,
      provider: provider.name,
      exitCode: outcome.exitCode,
      timedOut: outcome.timedOut,
      durationMs: Math.round(performance.now() - started),
      kept,
      reused,
      limitHit: outcome.limitHit,
    };
  } finally {
    // On errors, Ctrl-C and SIGTERM alike: what this run created goes, unless --keep.
    if (created && sandbox && !keep) {
      await provider.destroy(sandbox.id).catch((error) => sink.info(`warning: could not destroy ${sandbox!.id}: ${(error as Error).message}`));
      registry.remove(provider.name, sandbox.id);
    }
  }
}

/**
 * A plain command in a throwaway sandbox: create, exec and destroy would do nothing else, so a
 * provider that can do all three in one go (capabilities.oneShot) saves their round trips. A
 * --ttl stays on the normal path: it must bound the sandbox even if this process dies.
 */
function canRunOnce(provider: Provider, options: RunOptions): options is CommandRun {
  return (
    provider.capabilities.oneShot &&
    provider.runOnce !== undefined &&
    options.source.kind === "command" &&
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

async function runOnce(provider: Provider, options: CommandRun, sink: OutputSink, started: number): Promise<RunResult> {
  const outcome = await provider.runOnce!(createSpec(options, sink), execSpec(commandArgv(options), options, sink, options.workdir));
  throwIfAborted(options.signal);
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

function createSpec(options: RunOptions, sink: OutputSink): CreateSpec {
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

type CommandRun = RunOptions & { source: Extract<CodeSource, { kind: "command" }> };

/** The argv of a plain command line and its extra arguments. */
function commandArgv(options: CommandRun): string[] {
  return ["sh", "-c", [options.source.line, ...options.args.map(shellQuote)].join(" ")];
}

/** Says plainly what a provider cannot do: refuses what would weaken isolation, warns about the rest. */
function checkCapabilities(provider: Provider, options: RunOptions, sink: OutputSink): void {
  checkNetworkSupport(provider.name, provider.capabilities, options.network);
  if (options.network?.mode === "host") sink.info(HOST_NETWORK_WARNING);
  checkPids(provider, options.pids);
  if ((options.cpus !== undefined || options.memoryMb !== undefined) && !provider.capabilities.resources) {
    sink.info(`provider ${provider.name} does not support --cpus/--memory; ignored`);
  }
  if (options.ttlSeconds !== undefined && !provider.capabilities.ttl) {
    sink.info(`provider ${provider.name} has no sandbox lifetime (--ttl); ignored`);
  }
}

/** --pids is a security limit: refused, never ignored, where a provider cannot enforce it. */
export function checkPids(provider: Provider, pids: number | undefined): void {
  if (pids !== undefined && !provider.capabilities.pids) {
    throw new SandboxesError("unsupported", `provider ${provider.name} cannot limit the number of processes (--pids)`, "user", "use -p local or -p docker, or run without --pids");
  }
}

/** Whether --reuse (and the library's find) may pick this sandbox: running, or one exec starts again. */
export function reusable(provider: Provider, record: SandboxRecord): boolean {
  return record.state === "running" || (record.state === "stopped" && provider.capabilities.startsStopped === true);
}

async function findReusable(provider: Provider, options: RunOptions): Promise<SandboxRecord | undefined> {
  if (!options.name && Object.keys(options.labels).length === 0) {
    throw new SandboxesError("reuse_without_key", "--reuse needs --name or at least one --label to find the sandbox", "usage");
  }
  const candidates = await provider.list(Object.keys(options.labels).length ? { labels: options.labels } : {});
  return candidates.find((r) => reusable(provider, r) && (!options.name || r.name === options.name));
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new InterruptedError((signal.reason as StopReason) ?? "SIGINT");
}

async function runInSandbox(provider: Provider, id: string, options: RunOptions, sink: OutputSink): Promise<ExecOutcome> {
  for (const upload of options.uploads) {
    throwIfAborted(options.signal);
    await uploadPath(provider, id, upload.local, upload.remote);
  }
  if (options.workdir !== undefined) {
    // After the uploads, which may have made it: a run's own sandbox gets -w created.
    await prepareWorkdir(provider, id, options.workdir, "create", options.signal);
    throwIfAborted(options.signal);
  }
  const source = options.source;
  if (source.kind === "command") return execChecked(provider, id, commandArgv({ ...options, source }), options, sink, options.workdir);
  const language = source.language;
  const codeDir = posix.join("/tmp", `sandboxes-run-${randomBytes(4).toString("hex")}`);
  let fileName: string;
  if (source.kind === "file") {
    fileName = basename(source.path);
    if (options.deps) {
      await uploadProjectDir(provider, id, dirname(resolve(source.path)), codeDir);
    } else {
      await provider.putArchive!(id, codeDir, await packFile(fileName, readFileSync(source.path)));
    }
  } else {
    fileName = defaultFileName(language);
    if (options.deps) await uploadProjectDir(provider, id, process.cwd(), codeDir);
    await provider.putArchive!(id, codeDir, await packFile(fileName, source.code));
  }
  throwIfAborted(options.signal);
  await checkRuntime(provider, id, language, options.image);
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
  const script = `F=${shellQuote(posix.join(codeDir, fileName))}; ${options.workdir ? "" : `cd ${shellQuote(codeDir)} || exit 125; `}${runScript}`;
  return execChecked(provider, id, ["sh", "-c", script, "sandboxes-run", ...options.args], { ...options, env }, sink, options.workdir);
}

async function execChecked(provider: Provider, id: string, argv: string[], options: RunOptions, sink: OutputSink, cwd?: string): Promise<ExecOutcome> {
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
  const tar = await packProject(dir, basename(codeDir));
  await provider.putArchive!(id, posix.dirname(codeDir), tar);
}

async function packProject(dir: string, entryName: string): Promise<Uint8Array> {
  const excludes = ["node_modules", "target", ".git", ".venv", "__pycache__", ".sandboxes-deps"].map((e) => `--exclude=./${e}`);
  const child = Bun.spawn(["tar", "-c", "-f", "-", ...formatArgs(), ...excludes, ...renameArgs("\\.", entryName), "-C", dir, "."], { stdout: "pipe", stderr: "pipe" });
  const [bytes, errors, code] = await Promise.all([new Response(child.stdout).bytes(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new SandboxesError("file_transfer_failed", `cannot pack ${dir}: ${errors.trim()}`, "user");
  return bytes;
}

async function findManifest(provider: Provider, id: string, language: Language, codeDir: string) {
  for (const candidate of language.deps ?? []) {
    const { code } = await probe(provider, id, 'test -f "$1"', posix.join(codeDir, candidate.manifest));
    if (code === 0) return candidate;
  }
  return undefined;
}

async function checkRuntime(provider: Provider, id: string, language: Language, image?: string): Promise<void> {
  const script = language.needs.map((group) => `{ ${group.map((exe) => `command -v ${exe} >/dev/null 2>&1`).join(" || ")} || echo ${group.join("/")}; }`).join("; ");
  const { code, stdout } = await probe(provider, id, script);
  const missing = stdout.trim();
  if (code !== 0 || missing) {
    throw new SandboxesError(
      "missing_runtime",
      `${missing || language.needs.flat().join("/")} is not installed in this sandbox${image ? ` (image ${image})` : ""}, so ${language.name} cannot run: pass --image with one that has it`,
      "user",
    );
  }
}

