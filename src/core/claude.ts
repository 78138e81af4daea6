import { existsSync, statSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, posix, resolve } from "node:path";
import { findDescriptor } from "../providers/catalog";
import type { Mount, Provider, SandboxRecord } from "../providers/types";
import type { Settings } from "./config";
import { SandboxesError } from "../base/errors";
import { type InteractiveIO, runProgram, withSandbox } from "./interactive";
import { throwIfAborted } from "./lifecycle";
import { listSandboxes, type ListResult } from "./inventory";
import { packProjectDir } from "./project-upload";
import { Registry } from "./registry";
import type { OutputSink } from "./run";
import { chooseProvider } from "./select";
import { probe, sendArchive } from "./transfer";
import { shellQuote } from "../base/quote";

/** Every sandbox made by `sandboxes claude` carries this label; `--list` filters on it. */
export const CLAUDE_LABEL = "sandboxes.claude";
/** Where the project lives inside the sandbox (absolute, or ~/NAME under the sandbox's home). */
export const WORKDIR_LABEL = "sandboxes.workdir";
/** The host directory mounted as the project (mounting providers only), so a resume can check it. */
export const HOSTDIR_LABEL = "sandboxes.hostdir";

/**
 * The image each provider uses for `claude` when no -i is given: a template with Claude Code
 * preinstalled where the provider has one, or an image with Node.js so npm can install it.
 * A provider missing here uses its own default image.
 */
export const CLAUDE_IMAGES: Record<string, string> = {
  e2b: "anthropic-claude-code",
  docker: "node:22-bookworm",
};

/** Credentials forwarded to Claude Code when set here; only ever through the exec/PTY env. */
export const CLAUDE_CREDENTIALS = ["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"] as const;

export const CLAUDE_PACKAGE = "@anthropic-ai/claude-code";

/** npm's global prefix inside the sandbox: under the home, so no root is needed. */
const NPM_PREFIX = "$HOME/.npm-global";
const WITH_PATH = `PATH="${NPM_PREFIX}/bin:$PATH"; export PATH`;

/**
 * Installs into a prefix of our own while keeping the image's global npm configuration (a
 * registry or CA set in $PREFIX/etc/npmrc would otherwise be dropped along with the prefix).
 */
const INSTALL_SCRIPT = [
  'globalconfig=$(npm config get globalconfig 2>/dev/null)',
  `exec npm install --global --prefix "${NPM_PREFIX}" \${globalconfig:+--globalconfig "$globalconfig"} --no-fund --no-audit --no-update-notifier --loglevel=error "$1"`,
].join("\n");

const PROBE_SCRIPT = [
  'printf "%s\\n" "$HOME"',
  WITH_PATH,
  "if command -v claude >/dev/null 2>&1; then echo present; elif command -v npm >/dev/null 2>&1; then echo missing; else echo no-npm; fi",
].join("\n");

export interface ClaudeOptions {
  /** Local project directory (mounted or uploaded). */
  dir?: string;
  name?: string;
  provider?: string;
  keep: boolean;
  image?: string;
  /** -e values for the session. */
  env: Record<string, string>;
  /** Arguments after `--`, passed to claude. */
  args: string[];
  signal: AbortSignal;
}

type ProjectMode = { kind: "none" } | { kind: "mount"; hostDir: string; sandboxPath: string } | { kind: "upload"; hostDir: string; name: string };

export async function runClaude(settings: Settings, options: ClaudeOptions, io: InteractiveIO): Promise<number> {
  const providerName = (await chooseProvider(settings, options.provider)).name;
  const project = projectMode(options.dir, providerName);
  const name = options.name ?? (options.keep ? `claude-${randomBytes(4).toString("hex")}` : undefined);
  const labels: Record<string, string> = { [CLAUDE_LABEL]: "1" };
  let mounts: Mount[] | undefined;
  if (project.kind === "mount") {
    labels[WORKDIR_LABEL] = project.sandboxPath;
    labels[HOSTDIR_LABEL] = project.hostDir;
    mounts = [{ hostPath: project.hostDir, sandboxPath: project.sandboxPath, readonly: false }];
  } else if (project.kind === "upload") {
    labels[WORKDIR_LABEL] = `~/${project.name}`;
  }
  const target = { command: "claude", name, provider: options.provider, keep: options.keep, image: options.image ?? CLAUDE_IMAGES[providerName], labels, mounts };

  return withSandbox(settings, target, io.sink, options.signal, async ({ provider, record, created }, started) => {
    if (!created) checkResume(record, project, io.sink, labelsOf(settings, provider, record));
    const state = await probeSandbox(provider, record.id);
    throwIfAborted(options.signal);
    if (created && project.kind === "upload") {
      io.sink.info(`uploading ${project.hostDir} (respecting .gitignore) to ${posix.join(state.home, project.name)}; copy changes back with \`sandboxes cp ${shellQuote(`${record.name ?? record.id}:${posix.join(state.home, project.name)}`)} DEST\``);
      await sendArchive(provider, record.id, state.home, packProjectDir(project.hostDir));
      throwIfAborted(options.signal);
    }
    if (created && project.kind === "mount") {
      const { code } = await probe(provider, record.id, 'test -w "$1"', project.sandboxPath);
      if (code !== 0) io.sink.info(`warning: ${project.hostDir} is not writable inside the sandbox (mounted at ${project.sandboxPath}); Claude Code can read it but not change it`);
    }
    if (state.claude !== "present") await installClaude(provider, record.id, state.claude, io.sink, options.signal);
    const workdir = labelsOf(settings, provider, record)[WORKDIR_LABEL] ?? labels[WORKDIR_LABEL];
    const env: Record<string, string> = { ...options.env, IS_SANDBOX: "1" };
    for (const key of CLAUDE_CREDENTIALS) {
      const value = settings.env[key];
      if (value) env[key] = value;
    }
    return runProgram(
      provider,
      record.id,
      {
        argv: ["sh", "-c", `${WITH_PATH}; exec claude "$@"`, "claude", ...options.args],
        env,
        cwd: workdir ? workdir.replace(/^~(?=\/|$)/, state.home) : undefined,
      },
      io,
      options.signal,
      started,
    );
  });
}

function projectMode(dir: string | undefined, providerName: string): ProjectMode {
  if (dir === undefined) return { kind: "none" };
  const hostDir = resolve(dir);
  if (!existsSync(hostDir)) throw new SandboxesError("file_not_found", `${dir}: no such directory`, "usage");
  if (!statSync(hostDir).isDirectory()) throw new SandboxesError("file_not_found", `${dir} is not a directory: pass the project's directory`, "usage");
  const capabilities = findDescriptor(providerName).capabilities;
  if (capabilities.mounts) return { kind: "mount", hostDir, sandboxPath: posix.join("/workspace", basename(hostDir)) };
  if (capabilities.files) return { kind: "upload", hostDir, name: basename(hostDir) };
  throw new SandboxesError("unsupported", `provider ${providerName} can neither mount nor upload a directory`, "user", "run without DIR, or pick a provider with files (see `sandboxes providers`)");
}

/** Labels of a sandbox; the local registry stands in for providers that keep none. */
function labelsOf(settings: Settings, provider: Provider, record: SandboxRecord): Record<string, string> {
  if (Object.keys(record.labels).length) return record.labels;
  return new Registry(settings.stateDir).entries().find((e) => e.provider === provider.name && e.id === record.id)?.labels ?? {};
}

function checkResume(record: SandboxRecord, project: ProjectMode, sink: OutputSink, labels: Record<string, string>): void {
  if (project.kind === "mount" && labels[HOSTDIR_LABEL] !== project.hostDir) {
    const current = labels[HOSTDIR_LABEL] ? `works on ${labels[HOSTDIR_LABEL]}` : "has no project directory";
    throw new SandboxesError("project_mismatch", `sandbox ${record.name ?? record.id} ${current}; a directory is mounted only when the sandbox is created`, "user", "omit DIR to resume it, or pick another -n NAME");
  }
  if (project.kind === "upload") {
    sink.info(`resuming ${record.name ?? record.id}: ${project.hostDir} was not uploaded again (copy changes with \`sandboxes cp\`)`);
  }
}

async function probeSandbox(provider: Provider, id: string): Promise<{ home: string; claude: "present" | "missing" | "no-npm" }> {
  const { code, stdout } = await probe(provider, id, PROBE_SCRIPT);
  const [home, claude] = stdout.trim().split("\n");
  if (code !== 0 || !home || !claude) throw new SandboxesError("probe_failed", `cannot inspect sandbox ${id} on ${provider.name} (exit ${code})`, "provider");
  return { home, claude: claude as "present" | "missing" | "no-npm" };
}

async function installClaude(provider: Provider, id: string, state: "missing" | "no-npm", sink: OutputSink, signal: AbortSignal): Promise<void> {
  if (state === "no-npm") {
    throw new SandboxesError(
      "missing_runtime",
      `the sandbox has neither claude nor npm to install it (${CLAUDE_PACKAGE})`,
      "user",
      "pass -i with an image that has Node.js (e.g. node:22), or one with Claude Code preinstalled",
    );
  }
  sink.info(`installing Claude Code (${CLAUDE_PACKAGE}) from npm into the sandbox…`);
  const outcome = await provider.exec(id, {
    argv: ["sh", "-c", INSTALL_SCRIPT, "sh", CLAUDE_PACKAGE],
    env: {},
    onStdout: sink.stderr,
    onStderr: sink.stderr,
    signal,
  });
  throwIfAborted(signal);
  if (outcome.exitCode !== 0) {
    throw new SandboxesError("install_failed", `installing ${CLAUDE_PACKAGE} failed (npm exit ${outcome.exitCode}): see npm's output above`, "user", "check that the sandbox can reach the npm registry");
  }
}

export interface ClaudeSandbox {
  id: string;
  provider: string;
  name?: string;
  state: string;
  workdir?: string;
  createdAt?: string;
}

/** Claude sandboxes on every configured provider (or one). */
export async function listClaudeSandboxes(settings: Settings, provider?: string): Promise<{ sandboxes: ClaudeSandbox[]; warnings: ListResult["warnings"] }> {
  const result = await listSandboxes(settings, { provider, labels: { [CLAUDE_LABEL]: "1" } });
  return {
    sandboxes: result.sandboxes.map((s) => ({ id: s.id, provider: s.provider, name: s.name, state: s.state, workdir: s.labels[WORKDIR_LABEL], createdAt: s.createdAt })),
    warnings: result.warnings,
  };
}
