import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ProviderError, SandboxesError } from "../../base/errors";
import { homeDir } from "../../core/config";
import type { CreateSpec, ExecOutcome, ExecSpec, Provider, ProviderContext, PtySession, PtySpec, SandboxRecord } from "../types";
import { LOCAL_CAPABILITIES } from "./index";
import { bubblewrapPath } from "./bubblewrap";
import { bwrapArgv, type SandboxLayout, toolchainBinds, unshareArgv } from "./isolation";
import { dict, hasLabels } from "../../core/keys";

/** What we keep on disk for each local sandbox, beside its home and /tmp. */
interface LocalMeta {
  id: string;
  name?: string;
  labels: Record<string, string>;
  createdAt: string;
  env: Record<string, string>;
  network: boolean;
  mounts: CreateSpec["mounts"];
}

const ID_PATTERN = /^local-[0-9a-f]{12}$/;

export class LocalProvider implements Provider {
  readonly name = "local";
  readonly capabilities = LOCAL_CAPABILITIES;
  private readonly root: string;

  constructor(private readonly ctx: ProviderContext) {
    this.root = join(ctx.stateDir, "local");
  }

  private ensureLinux(): void {
    if (process.platform !== "linux") {
      throw new SandboxesError("unsupported_platform", "the local provider is Linux-only", "user", "use -p docker or a cloud provider (see `sandboxes providers`)");
    }
  }

  private dir(id: string): string {
    return join(this.root, id);
  }

  private readMeta(id: string): LocalMeta | null {
    if (!ID_PATTERN.test(id)) return null;
    try {
      return JSON.parse(readFileSync(join(this.dir(id), "meta.json"), "utf8")) as LocalMeta;
    } catch {
      return null;
    }
  }

  private record(meta: LocalMeta): SandboxRecord {
    return { id: meta.id, provider: this.name, name: meta.name, state: "running", labels: meta.labels, createdAt: meta.createdAt };
  }

  async create(spec: CreateSpec): Promise<SandboxRecord> {
    this.ensureLinux();
    const id = `local-${randomBytes(6).toString("hex")}`;
    const dir = this.dir(id);
    mkdirSync(join(dir, "home"), { recursive: true, mode: 0o700 });
    mkdirSync(join(dir, "tmp"), { recursive: true });
    mkdirSync(join(dir, "root"), { recursive: true });
    chmodSync(this.root, 0o700);
    const uid = this.sandboxUid(id);
    if (uid !== undefined) {
      chownSync(join(dir, "home"), uid, uid);
      chownSync(join(dir, "tmp"), uid, uid);
    }
    chmodSync(join(dir, "tmp"), 0o1777);
    const meta: LocalMeta = {
      id,
      name: spec.name,
      labels: spec.labels,
      createdAt: new Date().toISOString(),
      env: spec.env,
      network: spec.network?.mode !== "none",
      mounts: spec.mounts ?? [],
    };
    this.writeIdentityFiles(dir, uid);
    writeFileSync(join(dir, "meta.json"), JSON.stringify(meta, null, 2));
    return this.record(meta);
  }

  /** As root we run the program as an unprivileged uid derived from the id (one per sandbox). */
  private sandboxUid(id: string): number | undefined {
    if (process.getuid?.() !== 0) return undefined;
    return 200000 + (parseInt(id.slice(-6), 16) % 100000);
  }

  private writeIdentityFiles(dir: string, uid: number | undefined): void {
    const callerHome = homeDir(this.ctx.env);
    const ownUid = uid ?? process.getuid?.() ?? 1000;
    const ownGid = uid ?? process.getgid?.() ?? 1000;
    const passwd = [`root:x:0:0:root:/root:/bin/sh`, `sandbox:x:${ownUid}:${ownGid}:sandbox:${callerHome}:/bin/bash`, `nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin`];
    const group = [`root:x:0:`, `sandbox:x:${ownGid}:`, `nogroup:x:65534:`];
    // Without a user namespace mapping to 0, "root" inside is the caller, so name it sandbox too.
    writeFileSync(join(dir, "passwd"), [...new Set(passwd)].join("\n") + "\n");
    writeFileSync(join(dir, "group"), [...new Set(group)].join("\n") + "\n");
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const meta = this.readMeta(id);
    return meta ? this.record(meta) : null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    if (!existsSync(this.root)) return [];
    const records: SandboxRecord[] = [];
    for (const entry of readdirSync(this.root)) {
      const meta = this.readMeta(entry);
      if (!meta) continue;
      if (!hasLabels(meta.labels, filter.labels)) continue;
      records.push(this.record(meta));
    }
    return records.sort((a, b) => (a.createdAt ?? "").localeCompare(b.createdAt ?? ""));
  }

  async destroy(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) return;
    rmSync(this.dir(id), { recursive: true, force: true });
  }

  private requireMeta(id: string): LocalMeta {
    const meta = this.readMeta(id);
    if (!meta) throw new SandboxesError("unknown_sandbox", `no local sandbox with id ${id}`, "user", "see `sandboxes list -p local`");
    return meta;
  }

  private layout(meta: LocalMeta): SandboxLayout {
    const dir = this.dir(meta.id);
    const callerHome = homeDir(this.ctx.env);
    return {
      homeDir: join(dir, "home"),
      tmpDir: join(dir, "tmp"),
      passwdFile: join(dir, "passwd"),
      groupFile: join(dir, "group"),
      rootDir: join(dir, "root"),
      callerHome,
      readOnlyBinds: toolchainBinds(this.ctx.env, callerHome),
      mounts: meta.mounts ?? [],
      network: meta.network,
      dropToUid: this.sandboxUid(meta.id),
    };
  }

  /**
   * Mount points inside the sandbox's home (e.g. ~/.cargo/bin) are made here, world-traversable
   * and owned by the sandbox user; made by bwrap as root they would be 0700 root and block the
   * unprivileged program from its own toolchains.
   */
  private prepareMountPoints(layout: SandboxLayout): void {
    const uid = layout.dropToUid;
    for (const [, inside] of [...layout.readOnlyBinds, ...layout.mounts.map((m) => [m.hostPath, m.sandboxPath] as const)]) {
      if (!inside.startsWith(layout.callerHome + "/")) continue;
      let current = layout.homeDir;
      for (const part of inside.slice(layout.callerHome.length + 1).split("/")) {
        current = join(current, part);
        if (existsSync(current)) continue;
        mkdirSync(current, { mode: 0o755 });
        if (uid !== undefined) chownSync(current, uid, uid);
      }
    }
  }

  /** The clean environment: only what toolchains need, plus the sandbox's and the command's env. */
  private environment(meta: LocalMeta, extra: Record<string, string>, layout: SandboxLayout): Record<string, string> {
    const env = this.ctx.env;
    const bound = new Set(layout.readOnlyBinds.map(([, inside]) => inside));
    const path = (env.PATH ?? "/usr/local/bin:/usr/bin:/bin")
      .split(":")
      .filter((dir) => dir && (bound.has(dir) || /^\/(usr|bin|sbin|opt|snap|nix)(\/|$)/.test(dir)));
    for (const fallback of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
      if (!path.includes(fallback)) path.push(fallback);
    }
    const result: Record<string, string> = {
      PATH: path.join(":"),
      HOME: layout.callerHome,
      USER: "sandbox",
      LOGNAME: "sandbox",
      LANG: env.LANG || "C.UTF-8",
      TERM: env.TERM || "xterm-256color",
      TMPDIR: "/tmp",
      HOSTNAME: "sandbox",
    };
    for (const variable of ["RUSTUP_HOME", "CARGO_HOME", "PYENV_ROOT", "PYENV_VERSION", "NVM_DIR", "NVM_BIN", "GOROOT", "GOPATH", "BUN_INSTALL", "VOLTA_HOME", "JAVA_HOME", "LC_ALL"]) {
      const value = env[variable];
      if (value) result[variable] = value;
    }
    const home = layout.callerHome;
    if (!result.RUSTUP_HOME && existsSync(join(home, ".rustup"))) result.RUSTUP_HOME = join(home, ".rustup");
    if (!result.CARGO_HOME && existsSync(join(home, ".cargo"))) result.CARGO_HOME = join(home, ".cargo");
    if (!result.PYENV_ROOT && existsSync(join(home, ".pyenv"))) result.PYENV_ROOT = join(home, ".pyenv");
    if (!result.NVM_DIR && existsSync(join(home, ".nvm"))) result.NVM_DIR = join(home, ".nvm");
    if (!result.GOROOT && existsSync("/usr/local/go")) result.GOROOT = "/usr/local/go";
    return { ...result, ...meta.env, ...extra };
  }

  /**
   * The whole sandboxed invocation: argv, and the environment to start it with. The sandbox's
   * variables travel in that environment, not in argv, because any user on the host can read
   * argv (`ps`) while only the same user and root can read a process's environment: `-e
   * API_KEY=...` must not show up in `ps`. The wrappers pass the environment through; env(1)
   * at the end sets the sandbox's PATH, the directory, and drops what the wrappers added.
   */
  private invocation(meta: LocalMeta, argv: string[], env: Record<string, string>, cwd: string | undefined, pty: boolean): { argv: string[]; env: Record<string, string> } {
    const layout = this.layout(meta);
    this.prepareMountPoints(layout);
    const environment = this.environment(meta, env, layout);
    const { inEnviron, inArgv } = splitEnvironment(environment);
    // bwrap sets PWD; sh sets PWD and OLDPWD, bash also SHLVL and _. None belongs to the program.
    const addedByWrappers = ["PWD", "OLDPWD", "SHLVL", "_"].filter((name) => !(name in environment));
    const program = [
      "/usr/bin/env",
      ...addedByWrappers.flatMap((name) => ["-u", name]),
      `--chdir=${cwd ?? layout.callerHome}`,
      ...Object.entries(inArgv).map(([k, v]) => `${k}=${v}`),
      ...argv,
    ];
    const spawnEnv = { ...inEnviron, PATH: WRAPPER_PATH };
    const bwrap = bubblewrapPath(this.ctx.env);
    if (bwrap) return { argv: bwrapArgv(bwrap, layout, program, { pty }), env: spawnEnv };
    return { argv: unshareArgv(layout, program, process.getuid?.() === 0), env: spawnEnv };
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    this.ensureLinux();
    const meta = this.requireMeta(id);
    const invocation = this.invocation(meta, spec.argv, spec.env, spec.cwd, false);
    let child: ReturnType<typeof Bun.spawn>;
    try {
      child = Bun.spawn(invocation.argv, {
        stdin: spec.stdin ?? "ignore",
        stdout: "pipe",
        stderr: "pipe",
        env: invocation.env,
      });
    } catch (error) {
      throw new ProviderError("local", `cannot start the sandbox: ${(error as Error).message}`, undefined, undefined, "install bubblewrap (apt-get install bubblewrap) or util-linux");
    }
    let timedOut = false;
    const kill = () => child.kill("SIGKILL");
    const timer = spec.timeoutMs ? setTimeout(() => ((timedOut = true), kill()), spec.timeoutMs) : undefined;
    spec.signal?.addEventListener("abort", kill, { once: true });
    const pump = async (stream: ReadableStream<Uint8Array>, sink: (chunk: Uint8Array) => void) => {
      for await (const chunk of stream) sink(chunk);
    };
    try {
      const [code] = await Promise.all([
        child.exited,
        pump(child.stdout as ReadableStream<Uint8Array>, spec.onStdout),
        pump(child.stderr as ReadableStream<Uint8Array>, spec.onStderr),
      ]);
      if (timedOut) return { exitCode: 124, timedOut: true };
      const signalCode = child.signalCode ? signalNumber(child.signalCode) : undefined;
      return { exitCode: signalCode !== undefined ? 128 + signalCode : code, timedOut: false };
    } finally {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", kill);
    }
  }

  async putArchive(id: string, dir: string, tar: Uint8Array): Promise<void> {
    await this.runTar(id, ["sh", "-c", 'mkdir -p "$1" && exec tar -x --no-same-owner -f - -C "$1"', "sh", dir], tar, `cannot write files into ${dir}`);
  }

  async getArchive(id: string, path: string): Promise<Uint8Array> {
    const script = '[ -e "$1" ] || { echo "no such file or directory" >&2; exit 1; }; cd "$(dirname "$1")" && exec tar -c -f - "$(basename "$1")"';
    return this.runTar(id, ["sh", "-c", script, "sh", path], undefined, `cannot read ${path}`);
  }

  private async runTar(id: string, argv: string[], stdin: Uint8Array | undefined, what: string): Promise<Uint8Array> {
    const chunks: Uint8Array[] = [];
    const errors: Uint8Array[] = [];
    const outcome = await this.exec(id, { argv, env: {}, stdin, onStdout: (c) => chunks.push(c), onStderr: (c) => errors.push(c) });
    if (outcome.exitCode !== 0) {
      const detail = new TextDecoder().decode(Buffer.concat(errors)).trim().split("\n").pop() ?? "";
      throw new SandboxesError("file_transfer_failed", `${what}: ${detail.replace(/^tar: /, "")}`, "user");
    }
    return Buffer.concat(chunks);
  }

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    this.ensureLinux();
    const meta = this.requireMeta(id);
    const invocation = this.invocation(meta, spec.argv, spec.env, spec.cwd, true);
    const listeners: Array<(chunk: Uint8Array) => void> = [];
    const child = Bun.spawn(invocation.argv, {
      env: invocation.env,
      terminal: {
        cols: spec.cols,
        rows: spec.rows,
        data(_terminal: unknown, data: Uint8Array) {
          for (const listener of listeners) listener(data);
        },
      },
    } as Parameters<typeof Bun.spawn>[1]);
    const terminal = (child as unknown as { terminal: { write(d: string | Uint8Array): void; resize(c: number, r: number): void; close(): void } }).terminal;
    const exited = child.exited.then((code) => {
      const signalCode = child.signalCode ? signalNumber(child.signalCode) : undefined;
      return signalCode !== undefined ? 128 + signalCode : code;
    });
    return {
      write: (data) => terminal.write(data),
      resize: (cols, rows) => terminal.resize(cols, rows),
      onData: (listener) => void listeners.push(listener),
      exited,
      kill: async () => {
        child.kill("SIGKILL");
        await child.exited;
      },
    };
  }
}

function signalNumber(name: string | number): number | undefined {
  if (typeof name === "number") return name;
  const numbers = (require("node:os") as typeof import("node:os")).constants.signals as Record<string, number>;
  return numbers[name];
}

/** PATH for the wrappers themselves (bwrap, unshare, mount, chroot, setpriv) on the host side. */
const WRAPPER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** Variables that change how the wrappers themselves behave; see splitEnvironment. */
const ACTS_ON_WRAPPERS = new Set(["PATH", "GCONV_PATH", "SHELLOPTS", "BASHOPTS", "BASH_ENV", "ENV", "CDPATH", "IFS", "POSIXLY_CORRECT"]);

/**
 * Which variables can ride in the wrappers' environment. Some would act on bwrap, unshare, sh
 * and setpriv on the host, outside the sandbox: the dynamic loader's (LD_PRELOAD, ...), glibc's
 * and the shell's (ACTS_ON_WRAPPERS), and PATH is the wrappers' own. env(1) sets those inside.
 */
export function splitEnvironment(environment: Record<string, string>): { inEnviron: Record<string, string>; inArgv: Record<string, string> } {
  const inEnviron = dict<string>();
  const inArgv = dict<string>();
  for (const [name, value] of Object.entries(environment)) {
    const actsOnWrappers = ACTS_ON_WRAPPERS.has(name) || name.startsWith("LD_") || name.startsWith("MALLOC_") || name.startsWith("GLIBC_");
    (actsOnWrappers ? inArgv : inEnviron)[name] = value;
  }
  return { inEnviron, inArgv };
}
