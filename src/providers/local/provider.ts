import { chmodSync, chownSync, closeSync, constants as fsConstants, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { InterruptedError, ProviderError, SandboxesError, type StopReason } from "../../base/errors";
import { archivesThroughExec } from "../shared/exec-archive";
import { homeDir } from "../../base/home";
import type { CreateSpec, ExecOutcome, ExecSpec, NetworkPolicy, Provider, ProviderContext, PtySession, PtySpec, SandboxFile, SandboxRecord } from "../types";
import { LOCAL_CAPABILITIES } from "./index";
import { bubblewrapPath } from "./bubblewrap";
import { startHelper } from "./start";
import { BRIDGE_PORT, type BwrapHandshake, bwrapArgv, bwrapRoot, dieWithParent, dropPrivileges, EGRESS_SOCKET, egressViaUnixSocket, FIRST_EXTRA_FD, handsOverListener, HOLDER_READY, type Inner, RUN_DIR, SANDBOX_USER, type SandboxLayout, startEnterArgv, startUnshareArgv, toolchainBinds, unshareArgv } from "./isolation";
import { bootId, childrenOf, type HolderState, isAlive, killExecTree, liveState, outputEnd, type ProcessId, readState, startDetached, startTime, statFields, stdioPipes, stillRuns, stopState, waitUntil, withStartLock, writeState } from "./holder";
// Not ./egress/proxy or ./egress/policy: they load node:net, which a one-shot run loads while its
// sandbox starts (runOnce).
import { HOST_ALIAS, HOST_ALIAS_ADDRESS, proxyEnvironment } from "./egress/environment";
import { applyLimits, cgroupProcFiles, enterArgv as enterCgroups, joinCgroups, type LimitPlan, memoryKills, planLimits, removeLimits, removeStaleCgroups, rlimitArgv, setRlimits } from "./limits";
import { dict, hasLabels } from "../../base/keys";
import { PtyOutput } from "../shared/pty";

/** What we keep on disk for each local sandbox, beside its home and /tmp. */
interface LocalMeta {
  id: string;
  name?: string;
  labels: Record<string, string>;
  createdAt: string;
  env: Record<string, string>;
  /** A boolean in sandboxes made before network policies (true: the host's network). */
  network: NetworkPolicy | boolean;
  mounts: CreateSpec["mounts"];
  limits?: LimitPlan;
  /**
   * A one-shot sandbox's process of ours (the CLI, or the program using the library), which
   * removes it when the run ends. Its processes die with it (--die-with-parent, --kill-child):
   * once it is gone, what it left (killed with SIGKILL, say) is removed by sweepAbandoned.
   */
  owner?: ProcessId & { boot?: string };
}

/** This process as a one-shot sandbox's owner; none where /proc cannot tell (never swept then). */
function ownerRecord(): Pick<LocalMeta, "owner"> {
  const start = startTime(process.pid);
  return start === undefined ? {} : { owner: { pid: process.pid, start, boot: bootId() } };
}

/**
 * Runs `make` under umask 022, then gives the caller's back. What this process makes for the
 * sandbox's user to read or pass through (its /etc/hosts, passwd and group, the proxy's socket
 * directory, the mount points in its home) it often makes as root, whose umask may be 077 (a
 * hardened host): made under that, the sandbox's own uid could not read its /etc/hosts. The
 * program keeps the caller's umask: nothing is spawned inside `make`.
 */
function madeForSandbox<T>(make: () => T): T {
  const caller = process.umask(0o022);
  try {
    return make();
  } finally {
    process.umask(caller);
  }
}

/**
 * The directories `parts` below `base` (one inside the next), each made if missing with mode
 * 0755 and owned by `uid` (the sandbox's, as root), so the sandbox's user can write in them.
 * Returns the last. `base` is the sandbox's, shaped by its program while it ran: a symbolic link
 * (or a file) it left where a directory goes is removed, never followed, so this mkdir and chown,
 * ours (root's), stay inside the sandbox. Only while none of its processes runs: nothing races it.
 */
function makeOwnedDirs(base: string, parts: string[], uid: number | undefined): string {
  let current = base;
  for (const part of parts) {
    current = join(current, part);
    const there = lstatSync(current, { throwIfNoEntry: false });
    if (there?.isDirectory()) continue;
    if (there) unlinkSync(current);
    mkdirSync(current, { mode: 0o755 });
    if (uid !== undefined) chownSync(current, uid, uid);
  }
  return current;
}

/**
 * Removes a sandbox's directory tree, which its program shaped: what it did there must not cost
 * the host. rmSync works through whole paths, so its time grows with the square of the tree's
 * depth (1000 nested directories took 3.7 s here, 2000 took 18 s, a program nests 20000 in
 * seconds), and it stops at a directory left without permissions (as an ordinary user's, the
 * sandbox's files are ours to unlock; chmod 000 then left them behind). A tree deeper than
 * DEEP_TREE, or one we cannot read, goes through chmod(1) and rm(1) instead, which walk it
 * relative to each directory (linear at any depth; neither follows a symbolic link). Only once
 * the sandbox's processes are gone: nothing inside can race it.
 */
function removeTree(path: string): void {
  if (!deeperThan(path, DEEP_TREE)) {
    try {
      return rmSync(path, { recursive: true, force: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "EACCES" && code !== "EPERM") throw error;
    }
  }
  Bun.spawnSync(["sh", "-c", 'chmod -R u+rwx -- "$1" 2>/dev/null; exec rm -rf -- "$1"', "sh", path], { env: { PATH: WRAPPER_PATH }, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  if (existsSync(path)) throw new ProviderError("local", `cannot remove ${path}: remove it by hand`);
}

/** Nested directories past which removeTree leaves rmSync for rm(1). */
const DEEP_TREE = 32;

/**
 * Whether directories nest more than `levels` deep below `dir`, or one of them cannot be read.
 * It reads each directory down to that depth, as rmSync then does again: for the few a run
 * leaves, microseconds (the A/B in removeTree's commit).
 */
function deeperThan(dir: string, levels: number): boolean {
  if (levels < 0) return true;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code !== "ENOENT" && code !== "ENOTDIR";
  }
  return entries.some((entry) => entry.isDirectory() && deeperThan(join(dir, entry.name), levels - 1));
}

/**
 * CreateSpec.files into the sandbox's /tmp (`tmpDir` on the host), before anything runs in it,
 * owned by the sandbox's uid (as root): a path outside /tmp, or with `..`, is a bug of ours.
 */
function writeStartingFiles(tmpDir: string, files: SandboxFile[], uid: number | undefined): void {
  for (const file of files) {
    const parts = file.path.split("/").filter(Boolean);
    if (parts[0] !== "tmp" || parts.length < 2 || parts.some((part) => part === "." || part === "..")) {
      throw new ProviderError("local", `bug: a starting file outside /tmp: ${file.path}`);
    }
    const target = join(makeOwnedDirs(tmpDir, parts.slice(1, -1), uid), parts.at(-1)!);
    writeFileSync(target, file.content, { mode: 0o644 });
    if (uid !== undefined) chownSync(target, uid, uid);
  }
}


function policyOf(meta: LocalMeta): NetworkPolicy {
  if (typeof meta.network === "boolean") return { mode: meta.network ? "host" : "none", allow: [] };
  return meta.network ?? { mode: "default", allow: [] };
}

/**
 * The sandboxes binary as a helper process (the egress proxy on the host, the bridge inside):
 * the compiled binary itself, or, from source (bun test), bun with src/main.ts.
 */
function helperCommand(): { host: string[]; inside: string[]; binds: Array<[string, string]> } {
  if (import.meta.url.includes("$bunfs") || import.meta.url.includes("~BUN")) {
    const inside = `${RUN_DIR}/sandboxes`;
    return { host: [process.execPath], inside: [inside], binds: [[process.execPath, inside]] };
  }
  const projectRoot = resolve(import.meta.dir, "../../..");
  const main = join(projectRoot, "src/main.ts");
  const bun = `${RUN_DIR}/bun`;
  return { host: [process.execPath, main], inside: [bun, main], binds: [[process.execPath, bun], [projectRoot, projectRoot]] };
}

const ID_PATTERN = /^local-[0-9a-f]{12}$/;

/**
 * A one-shot sandbox's first process (its pid 1, as HolderState's target), noted as root before
 * the program starts: killing it ends the sandbox's pid namespace. By it sweepAbandoned stops a
 * sandbox whose CLI died after letting it go; as root a sandbox may have no cgroup to find its
 * processes by (limits.ts).
 */
const FIRST_PROCESS_FILE = "first-process.json";

export class LocalProvider implements Provider {
  readonly name = "local";
  readonly capabilities = LOCAL_CAPABILITIES;
  private readonly root: string;
  /** Whether a one-shot run of this provider has swept what earlier runs left (runOnce). */
  private swept = false;

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

  /**
   * running while its holder lives, or a one-shot sandbox's owner; stopped otherwise (after a
   * reboot: files kept, exec starts it).
   */
  private record(meta: LocalMeta): SandboxRecord {
    const live = meta.owner ? stillRuns(meta.owner) : liveState(join(this.dir(meta.id), "holder.json")) !== undefined;
    const state = live ? "running" : "stopped";
    return { id: meta.id, provider: this.name, name: meta.name, state, labels: meta.labels, createdAt: meta.createdAt };
  }

  async create(spec: CreateSpec): Promise<SandboxRecord> {
    const meta = await this.createFiles(spec);
    try {
      await this.ensureHolder(meta);
    } catch (error) {
      await this.destroy(meta.id);
      throw error;
    }
    return this.record(meta);
  }

  /** The sandbox's files: home, /tmp, identity files, /etc/hosts, and meta.json. */
  private async createFiles(spec: CreateSpec, owned = false): Promise<LocalMeta> {
    const meta = await this.planFiles(spec, owned);
    await this.writeFiles(meta, spec.files);
    return meta;
  }

  /** A new sandbox's record, its limits planned; nothing is on disk yet (writeFiles). */
  private async planFiles(spec: CreateSpec, owned: boolean): Promise<LocalMeta> {
    this.ensureLinux();
    // As root, an id whose uid no other sandbox here has (newSandboxId).
    const id = newSandboxId(process.getuid?.() === 0 ? this.ids() : []);
    return {
      id,
      name: spec.name,
      labels: spec.labels,
      createdAt: new Date().toISOString(),
      env: spec.env,
      network: spec.network ?? { mode: "default", allow: [] },
      mounts: spec.mounts ?? [],
      limits: await planLimits(id, spec, this.ctx.env),
      ...(owned ? ownerRecord() : {}),
    };
  }

  /**
   * Makes what planFiles planned. meta.json first: by it `list` and sweepAbandoned know the
   * sandbox, so one left half made (its process killed meanwhile) is shown, or removed.
   */
  private async writeFiles(meta: LocalMeta, files: SandboxFile[] | undefined): Promise<void> {
    this.makeDirs(meta);
    this.finishFiles(meta, files, { identityFiles: true });
    await applyLimits(meta.limits).catch((error) => {
      rmSync(this.dir(meta.id), { recursive: true, force: true });
      throw error;
    });
    await this.pauseForTest("files", meta.id);
  }

  /**
   * The sandbox's directory, meta.json first, and what a wrapper binds from it: bwrap looks for
   * every path it binds before it mounts anything (BwrapHandshake).
   */
  private makeDirs(meta: LocalMeta): void {
    const dir = this.dir(meta.id);
    madeForSandbox(() => {
      mkdirSync(join(dir, "home"), { recursive: true, mode: 0o700 });
      // Private to us. Only when it is not yet: a chmod is a journaled write even when nothing changes.
      if ((statSync(this.root).mode & 0o777) !== 0o700) chmodSync(this.root, 0o700);
      writeFileSync(join(dir, "meta.json"), JSON.stringify(meta, null, 2));
      mkdirSync(join(dir, "tmp"));
      writeFileSync(join(dir, "hosts"), `127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n${HOST_ALIAS_ADDRESS}\t${HOST_ALIAS}\n`);
    });
  }

  /**
   * What the program needs before it starts, besides its cgroups: its home and /tmp owned by the
   * sandbox's user, the files it starts with, and (unless the handshake hands them over) its
   * /etc/passwd and /etc/group.
   */
  private finishFiles(meta: LocalMeta, files: SandboxFile[] | undefined, { identityFiles }: { identityFiles: boolean }): void {
    const dir = this.dir(meta.id);
    const uid = this.sandboxUid(meta.id);
    if (uid !== undefined) {
      chownSync(join(dir, "home"), uid, uid);
      chownSync(join(dir, "tmp"), uid, uid);
    }
    chmodSync(join(dir, "tmp"), 0o1777);
    madeForSandbox(() => {
      if (identityFiles) {
        const identity = this.identity(meta.id);
        writeFileSync(join(dir, "passwd"), identity.passwd);
        writeFileSync(join(dir, "group"), identity.group);
      }
      if (files?.length) writeStartingFiles(join(dir, "tmp"), files, uid);
    });
  }


  /**
   * Where the egress proxy's socket lives on the host: in the sandbox's directory, unless that
   * path is too long for a unix socket (108 bytes), then in a directory of its own under /tmp.
   */
  private egressDir(id: string): string {
    const inside = join(this.dir(id), "net");
    if (join(inside, EGRESS_SOCKET).length < 100) return inside;
    return join("/tmp", `sandboxes-${process.getuid?.() ?? 0}-${id}`);
  }

  /** The sandbox's directory, and its egress socket's where that is one of its own (egressDir). */
  private removeDirs(id: string): void {
    const egress = this.egressDir(id);
    // Only what is there: a state directory we cannot even look into (EACCES) failed the run
    // before anything was made, and that is the error to tell, not this one.
    if (!egress.startsWith(`${this.dir(id)}/`) && existsSync(egress)) removeTree(egress);
    if (existsSync(this.dir(id))) removeTree(this.dir(id));
  }

  /** As root we run the program as an unprivileged uid derived from the id (one per sandbox). */
  private sandboxUid(id: string): number | undefined {
    if (process.getuid?.() !== 0) return undefined;
    return uidOfId(id);
  }

  /** The ids of the sandboxes here, kept and running alike (their directories). */
  private ids(): string[] {
    return existsSync(this.root) ? readdirSync(this.root) : [];
  }

  /** The sandbox's /etc/passwd and /etc/group, which name its user. */
  private identity(id: string): { passwd: string; group: string } {
    const uid = this.sandboxUid(id);
    const callerHome = homeDir(this.ctx.env);
    const ownUid = uid ?? process.getuid?.() ?? 1000;
    const ownGid = uid ?? process.getgid?.() ?? 1000;
    const passwd = [`root:x:0:0:root:/root:/bin/sh`, `${SANDBOX_USER}:x:${ownUid}:${ownGid}:sandbox:${callerHome}:/bin/bash`, `nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin`];
    const group = [`root:x:0:`, `${SANDBOX_USER}:x:${ownGid}:`, `nogroup:x:65534:`];
    // Without a user namespace mapping to 0, "root" inside is the caller, so name it sandbox too.
    return { passwd: [...new Set(passwd)].join("\n") + "\n", group: [...new Set(group)].join("\n") + "\n" };
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const meta = this.readMeta(id);
    return meta ? this.record(meta) : null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    if (!existsSync(this.root)) return [];
    const records = (await this.sweepAbandoned()).filter((meta) => hasLabels(meta.labels, filter.labels)).map((meta) => this.record(meta));
    return records.sort((a, b) => (a.createdAt ?? "").localeCompare(b.createdAt ?? ""));
  }

  /**
   * Removes what one-shot runs left when their process died without cleaning up (SIGKILL, the
   * OOM killer, a power cut): stops what still runs of the sandbox (by its first process, as
   * root, and its cgroups), removes its directory and cgroups, and cgroups of ours that no
   * sandbox here knows (their directory went some other way). `except`: the caller's own.
   * Returns the sandboxes that are left (their meta.json, read once for both).
   */
  private async sweepAbandoned(except?: string): Promise<LocalMeta[]> {
    const entries = this.ids();
    const left: LocalMeta[] = [];
    for (const entry of entries) {
      const meta = this.readMeta(entry);
      if (!meta) continue;
      if (entry === except || !meta.owner || stillRuns(meta.owner)) {
        left.push(meta);
        continue;
      }
      await stopState(readState(join(this.dir(entry), FIRST_PROCESS_FILE)));
      await removeLimits(meta.limits).catch(() => {});
      this.removeDirs(entry);
    }
    await removeStaleCgroups(this.ctx.env, (id) => entries.includes(id));
    return left;
  }

  async destroy(id: string): Promise<void> {
    if (!ID_PATTERN.test(id)) return;
    if (!existsSync(this.dir(id))) return removeTree(this.egressDir(id));
    // Under the start lock: a holder being started by an exec at this moment is stopped too.
    await this.startLocked(id, async () => {
      const meta = this.readMeta(id);
      const state = readState(join(this.dir(id), "holder.json"));
      await stopState(state);
      // The rest of the pid namespace dies with its first process; wait for it to be gone.
      if (state) await waitUntil(() => !isAlive(state.target), 5000);
      await removeLimits(meta?.limits);
      this.removeDirs(id);
    });
  }

  /**
   * Test knob: with SANDBOXES_TEST_PAUSE_AT=STAGE, set-up says on stderr that it reached that
   * stage and waits there for a signal (at most 10 s), so a test can interrupt every stage, or
   * let it go on (SIGUSR2, which nothing else here handles).
   */
  private async pauseForTest(stage: "files" | "proxy" | "let-go" | "handover" | "holder-proxy" | "holder", id: string): Promise<void> {
    if (this.ctx.env.SANDBOXES_TEST_PAUSE_AT !== stage) return;
    process.stderr.write(`sandboxes-test: ${id} paused at ${stage}\n`);
    const signals = ["SIGINT", "SIGTERM", "SIGHUP", "SIGUSR2"] as const;
    await new Promise<void>((resolve) => {
      const resume = () => {
        clearTimeout(timer);
        for (const signal of signals) process.off(signal, resume);
        resolve();
      };
      const timer = setTimeout(resume, 10_000);
      for (const signal of signals) process.on(signal, resume);
    });
  }

  /** Runs `work` under the sandbox's start lock (holder.ts), in the state store, loaded only here. */
  private async startLocked<T>(id: string, work: () => Promise<T>): Promise<T> {
    const { openStore } = await import("../../base/store");
    return withStartLock(openStore(this.ctx.stateDir), id, work);
  }

  /**
   * The sandbox's holder (and egress proxy), started if it is not running: at create, and over
   * the files of a stopped sandbox (a reboot, a killed holder) at its next exec.
   */
  private async ensureHolder(meta: LocalMeta): Promise<HolderState> {
    const stateFile = join(this.dir(meta.id), "holder.json");
    // Running: join it without a lock. Stopped: one command starts it; the others wait and join.
    return liveState(stateFile) ?? this.startLocked(meta.id, async () => liveState(stateFile) ?? this.startHolder(meta));
  }

  private async startHolder(meta: LocalMeta): Promise<HolderState> {
    const dir = this.dir(meta.id);
    if (!existsSync(join(dir, "meta.json"))) throw new SandboxesError("unknown_sandbox", `local sandbox ${meta.id} was destroyed`, "user", "see `sandboxes list -p local`");
    const stateFile = join(dir, "holder.json");
    await stopState(readState(stateFile));
    // After a reboot the sandbox's cgroups are gone with the rest of the old boot.
    await applyLimits(meta.limits);
    const policy = policyOf(meta);
    const helper = helperCommand();
    // The egress proxy and the holder start side by side: each is a process that takes tens of
    // milliseconds to be ready, and nothing in the sandbox connects to the proxy before both are
    // (the bridge inside connects per connection, to a socket in a directory bound already).
    let proxyStarting: Promise<HolderState["proxy"]> = Promise.resolve(undefined);
    if (policy.mode === "default") {
      const egressDir = this.egressDir(meta.id);
      madeForSandbox(() => mkdirSync(egressDir, { recursive: true, mode: 0o755 }));
      const argv = [...helper.host, "__egress-proxy", join(egressDir, EGRESS_SOCKET), ...policy.allow.flatMap((entry) => ["--allow", entry]), "--blocked-log", join(dir, "blocked.log")];
      proxyStarting = startDetached(argv, { PATH: WRAPPER_PATH }, "listening", join(dir, "proxy.log"), "egress proxy").then(async (proxy) => {
        await this.pauseForTest("holder-proxy", meta.id);
        return proxy;
      });
    }
    const layout = this.layout(meta);
    this.prepareMountPoints(layout);
    const inner: Inner = { kind: "holder" };
    const bwrap = bubblewrapPath(this.ctx.env);
    if (!bwrap) mkdirSync(layout.rootDir, { recursive: true });
    const sandboxStart = bwrap ? undefined : await startHelper(this.ctx.stateDir, this.ctx.env);
    const argv = bwrap
      ? enterCgroups(meta.limits, bwrapArgv(bwrap, layout, inner, { pty: false }))
      : sandboxStart !== undefined
        ? startUnshareArgv(sandboxStart, layout, inner, cgroupProcFiles(meta.limits))
        : enterCgroups(meta.limits, unshareArgv(layout, inner));
    const holderStarting = startDetached(argv, { PATH: WRAPPER_PATH }, HOLDER_READY, join(dir, "holder.log"), "sandbox").then(async (holder) => {
      await this.pauseForTest("holder", meta.id);
      return holder;
    });
    const [proxyStarted, holderStarted] = await Promise.allSettled([proxyStarting, holderStarting]);
    if (proxyStarted.status === "rejected" || holderStarted.status === "rejected") {
      // Whichever did start is stopped; the first failure is the one to tell.
      await stopState({ proxy: proxyStarted.status === "fulfilled" ? proxyStarted.value : undefined, holder: holderStarted.status === "fulfilled" ? holderStarted.value : undefined });
      throw proxyStarted.status === "rejected" ? proxyStarted.reason : (holderStarted as PromiseRejectedResult).reason;
    }
    const proxy = proxyStarted.value;
    const holder = holderStarted.value;
    const first = childrenOf(holder.pid)[0];
    const start = first === undefined ? undefined : startTime(first);
    if (first === undefined || start === undefined) {
      await stopState({ holder, proxy });
      throw new ProviderError("local", "the sandbox's first process is missing");
    }
    const target = { pid: first, start };
    const state: HolderState = { holder, target, proxy };
    writeState(stateFile, state);
    return state;
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
      network: policyOf(meta).mode,
      hostsFile: join(dir, "hosts"),
      egressDir: this.egressDir(meta.id),
      helper: { binds: helperCommand().binds, argv: helperCommand().inside },
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
    madeForSandbox(() => {
      for (const [, inside] of [...layout.readOnlyBinds, ...layout.mounts.map((m) => [m.hostPath, m.sandboxPath] as const)]) {
        if (!inside.startsWith(layout.callerHome + "/")) continue;
        makeOwnedDirs(layout.homeDir, inside.slice(layout.callerHome.length + 1).split("/"), uid);
      }
    });
  }

  /** The clean environment: only what toolchains need, plus the sandbox's and the command's env. */
  private environment(meta: LocalMeta, extra: Record<string, string>, layout: SandboxLayout): Record<string, string> {
    const env = this.ctx.env;
    // A PATH directory inside a bound one is there too (pyenv's shims under ~/.pyenv, nvm's
    // node under ~/.nvm): toolchainBinds binds only the outer one.
    const bound = layout.readOnlyBinds.map(([, inside]) => inside);
    const visible = (dir: string) => bound.some((outer) => dir === outer || dir.startsWith(`${outer}/`)) || /^\/(usr|bin|sbin|opt|snap|nix)(\/|$)/.test(dir);
    // Each directory once: a name not found costs a failed exec per entry.
    const path = [...new Set((env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":"))].filter((dir) => dir && visible(dir));
    for (const fallback of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
      if (!path.includes(fallback)) path.push(fallback);
    }
    const result: Record<string, string> = {
      PATH: path.join(":"),
      HOME: layout.callerHome,
      USER: SANDBOX_USER,
      LOGNAME: SANDBOX_USER,
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
    const proxy = layout.network === "default" ? proxyEnvironment(BRIDGE_PORT) : {};
    return { ...result, ...proxy, ...meta.env, ...extra };
  }

  /**
   * The whole sandboxed invocation: argv, and the environment to start it with. The sandbox's
   * variables travel in that environment, not in argv, because any user on the host can read
   * argv (`ps`) while only the same user and root can read a process's environment: `-e
   * API_KEY=...` must not show up in `ps`. The wrappers pass the environment through; env(1)
   * at the end sets the sandbox's PATH, the directory, and drops what the wrappers added.
   */
  private async invocation(meta: LocalMeta, argv: string[], env: Record<string, string>, cwd: string | undefined, how: { pty: boolean; enter: HolderState }): Promise<Invocation> {
    const layout = this.layout(meta);
    this.prepareMountPoints(layout);
    const split = this.splitEnvironmentFor(meta, env, layout);
    // Every process of the sandbox, the holder and each entered command, starts in its cgroups.
    const sandboxStart = await startHelper(this.ctx.stateDir, this.ctx.env);
    if (sandboxStart !== undefined) {
      const { program, spawnEnv } = programWithEnv(undefined, layout, argv, split, cwd);
      return { argv: startEnterArgv(sandboxStart, how.enter.target.pid, layout, { kind: "program", argv: program, rlimits: meta.limits?.rlimits }, how.pty, cgroupProcFiles(meta.limits)), env: spawnEnv };
    }
    const { program, spawnEnv } = programWithEnv(meta.limits, layout, argv, split, cwd);
    return { argv: enterCgroups(meta.limits, enterArgv(how.enter, layout, program, how.pty)), env: spawnEnv };
  }

  /** The sandbox's environment for a command, split as splitEnvironment says. */
  private splitEnvironmentFor(meta: LocalMeta, env: Record<string, string>, layout: SandboxLayout): SplitEnvironment {
    return splitEnvironment(this.environment(meta, env, layout));
  }

  /**
   * The invocation of a one-shot program (runOnce) and how it starts. With bubblewrap:
   *  - bwrap starts before the sandbox's files exist: it reads the sandbox's root from us
   *    (bwrapArgv's rootFrom) once they do, or as root once it is in the sandbox's cgroups, and
   *    waits for the files later, at the handshake (BwrapHandshake). Its own start, a good part
   *    of a run's, goes on meanwhile;
   *  - with the default policy, the proxy's listener is made from here (listeners.ts) before the
   *    program can start, and the proxy itself only on the first connection: as root in the
   *    sandbox's network namespace (no bridge inside, nothing between the program and the proxy),
   *    else the unix socket where sandbox-start inside hands over the listener it made (the
   *    proxy then accepts from the sandbox's loopback too), or, where no copy can be made, where
   *    the bridge inside connects;
   *  - the program runs right under bwrap (and sandbox-start), which sets its directory, with
   *    its variables in the environment, unless one of them would act on a wrapper (env(1) then);
   *  - bwrap is moved into the sandbox's cgroups before it makes the sandbox's first process,
   *    which starts in them (no shell that joins them first).
   * Nothing here touches the disk: start.prepare and start.mountPoints make what the invocation
   * needs there, once the sandbox's files are made.
   */
  private oneShotInvocation(meta: LocalMeta, argv: string[], env: Record<string, string>, cwd: string | undefined, start: string | undefined): Invocation & { start: OneShotStart } {
    const layout = this.layout(meta);
    layout.start = start;
    const bwrap = bubblewrapPath(this.ctx.env);
    const network = policyOf(meta).mode;
    layout.egressListener = bwrap !== undefined && network === "default" && process.getuid?.() === 0 && this.ctx.env.SANDBOXES_LOCAL_EGRESS_LISTENER !== "off";
    // Else the proxy's unix socket, in a directory bound into the sandbox, where the listener made
    // inside is handed over, or a bridge inside connects.
    const bridged = egressViaUnixSocket(layout);
    const socketPath = bridged ? join(layout.egressDir, EGRESS_SOCKET) : undefined;
    const handover = handsOverListener(layout);
    const mountPoints = () => this.prepareMountPoints(layout);
    const prepare = () => {
      if (bridged) madeForSandbox(() => mkdirSync(layout.egressDir, { recursive: true, mode: 0o755 }));
      if (!bwrap) mkdirSync(layout.rootDir, { recursive: true });
    };
    const inner = (program: string[], limits: LimitPlan | undefined): Inner & { kind: "program" } => ({ kind: "program", argv: program, rlimits: limits?.rlimits });
    const split = this.splitEnvironmentFor(meta, env, layout);
    if (!bwrap) {
      const { program, spawnEnv } = programWithEnv(undefined, layout, argv, split, cwd);
      const wrapped = start !== undefined
        ? startUnshareArgv(start, layout, inner(program, meta.limits), cgroupProcFiles(meta.limits))
        : dieWithParent(enterCgroups(meta.limits, unshareArgv(layout, inner(program, meta.limits))));
      return { argv: wrapped, env: spawnEnv, start: { socketPath, handover, prepare, mountPoints } };
    }
    // The handshake as root, whose program runs as the sandbox's user by name (BwrapHandshake).
    // The cgroups need none: the sandbox's first process is born in them (runOnce moves bwrap into
    // them before handing it the root).
    const handshake = layout.dropToUid !== undefined ? { infoFd: FIRST_EXTRA_FD, groupFd: FIRST_EXTRA_FD + 1, passwdFd: FIRST_EXTRA_FD + 2 } : undefined;
    const rootFrom = FIRST_EXTRA_FD + (handshake ? 3 : 0);
    const direct = Object.keys(split.inArgv).every((name) => name === "PATH");
    // With the handshake, runOnce sets the rlimits on the sandbox's first process: no prlimit(1).
    const rlimitsInArgv = handshake ? undefined : meta.limits;
    const { program, spawnEnv } = direct ? { program: argv, spawnEnv: { ...split.inEnviron, ...split.inArgv } } : programWithEnv(undefined, layout, argv, split, cwd);
    return {
      argv: bwrapArgv(bwrap, layout, inner(program, rlimitsInArgv), { pty: false, handshake, rootFrom }),
      env: spawnEnv,
      start: { socketPath, handover, handshake, listen: layout.egressListener, prepare, mountPoints, root: { fd: rootFrom, argv: () => bwrapRoot(layout, direct ? (cwd ?? layout.callerHome) : undefined, handshake) } },
    };
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    this.ensureLinux();
    const meta = this.requireMeta(id);
    const state = await this.ensureHolder(meta);
    const invocation = await this.invocation(meta, spec.argv, spec.env, spec.cwd, { pty: false, enter: state });
    const blocked = await this.reportBlocked(meta, spec.onNotice);
    const killsBefore = memoryKills(meta.limits);
    try {
      // Not spec.stdoutFd: killExecTree finds escaped processes by the output pipes they hold,
      // and a pipe of our own stdout is also held by whoever reads it.
      const outcome = await spawnStreaming(invocation, { ...spec, stdoutFd: undefined }, (child, pipes) => killExecTree(child.pid, pipes), { inKept: true });
      return memoryKills(meta.limits) > killsBefore && !outcome.timedOut ? { ...outcome, limitHit: "memory" } : outcome;
    } finally {
      blocked();
    }
  }

  /**
   * A program (and the files it starts with, CreateSpec.files) in a sandbox of its own that ends
   * with it: the wrapper runs the program directly (no holder, no nsenter), the egress proxy runs
   * in this process, and everything the program started dies with it (pid namespace,
   * --die-with-parent / --kill-child). With the default policy the proxy's listener is made
   * before the program can start, and the proxy itself (node:net, a good part of a run's start-up)
   * only once the program first connects: the kernel queues that connection meanwhile.
   */
  async runOnce(create: CreateSpec, spec: ExecSpec): Promise<ExecOutcome & { id: string }> {
    const meta = await this.planFiles(create, true);
    const policy = policyOf(meta);
    let proxy: { close(): Promise<void> } | undefined;
    let listenerFd: number | undefined;
    // bwrap's --info-fd (BwrapHandshake).
    let infoFile: number | undefined;
    let sweeping: Promise<void> | undefined;
    const startProxy = async (fd: number) => {
      const [{ formatBlocked, startEgressProxy }, { AllowEntryError }] = await Promise.all([import("./egress/proxy"), import("./egress/policy")]);
      proxy = await startEgressProxy({
        listen: { fd },
        allow: policy.allow,
        onBlocked: (event) => spec.onNotice?.(formatBlocked(event)),
      }).catch((error) => {
        if (error instanceof AllowEntryError) throw new SandboxesError("bad_allow_net", error.message, "usage");
        throw error;
      });
    };
    try {
      const invocation = this.oneShotInvocation(meta, spec.argv, spec.env, spec.cwd, await startHelper(this.ctx.stateDir, this.ctx.env));
      const { socketPath, handshake, root } = invocation.start;
      const signal = spec.signal;
      const checkNotAborted = () => {
        if (signal?.aborted) throw new InterruptedError((signal.reason as StopReason) ?? "SIGINT");
      };
      // What earlier runs left, swept once the program is let go, while the sandbox starts it: out
      // of the run's way. Once per provider: the MCP server makes many one-shot runs.
      const sweepSoon = () => {
        if (this.swept) return;
        this.swept = true;
        sweeping = new Promise<void>((resolve) => setTimeout(() => this.sweepAbandoned(meta.id).then(() => resolve(), () => resolve()), 0));
      };
      const makeFiles = async () => {
        await this.writeFiles(meta, create.files);
        invocation.start.prepare();
        invocation.start.mountPoints();
      };
      // bwrap reads the sandbox's root from us, and starts meanwhile. It clones the sandbox's first
      // process only after reading it, and a process starts in its parent's cgroups: bwrap is moved
      // into them first, so nothing of the sandbox runs outside. The paths the root binds exist by
      // then; as root the rest of the sandbox's files are made while bwrap goes on (the handshake).
      // The proxy's unix socket (the handover's, or the bridge's) listens before the program can
      // start; the proxy itself starts on the first connection (serveOnFirstUse).
      const listenOnHost = async () => {
        const { listenOnUnixSocket } = await import("./listeners");
        listenerFd = await listenOnUnixSocket(socketPath!).catch((error) => {
          throw new ProviderError("local", `cannot make the egress proxy's socket: ${(error as Error).message}`);
        });
        await this.pauseForTest("proxy", meta.id);
        checkNotAborted();
      };
      if (!root) {
        await makeFiles();
        if (socketPath) await listenOnHost();
      }
      const giveRoot = async (child: Subprocess, end: number, close: (end: number) => void) => {
        if (handshake) {
          await applyLimits(meta.limits);
          this.makeDirs(meta);
          invocation.start.prepare();
        } else {
          await makeFiles();
        }
        checkNotAborted();
        // The handover's socket may come after the root: sandbox-start waits for it, so
        // that making it (bun:ffi's first load among it) overlaps bwrap's making of the sandbox.
        const listenLater = invocation.start.handover === true && !handshake;
        if (socketPath && !listenLater) await listenOnHost();
        joinCgroups(meta.limits, [child.pid]);
        await writeAll(end, Buffer.from(`${root!.argv().join("\0")}\0`));
        close(end);
        if (listenLater) await listenOnHost();
        // Without a handshake, the root was the last of the sandbox.
        if (!handshake) await this.pauseForTest("let-go", meta.id);
      };
      // The handshake (BwrapHandshake): the rest of the sandbox's files while bwrap makes its
      // namespaces, and its /etc/group once they are done; then the rlimits on the sandbox's first
      // process, the listener, and the sandbox's /etc/passwd, which lets bwrap go on and start
      // the program. The proxy behind the listener starts only when the program first connects
      // (firstUse): loading node:net takes milliseconds of CPU that a program which never uses
      // the network need not compete with. The kernel queues the first connections until the
      // proxy accepts them.
      const completeHandshake = async (child: Subprocess, { info, group, passwd }: { info: number; group: number; passwd: number }, close: (end: number) => void) => {
        // bun:ffi (libc.ts), loaded while bwrap starts: the rlimits need it, and so does the
        // listener (their errors are theirs to tell).
        import("./libc").then((m) => m.loadLibc()).catch(() => {});
        const loading = invocation.start.listen ? import("./listeners") : undefined;
        this.finishFiles(meta, create.files, { identityFiles: false });
        // Mount points, not what the root binds: bwrap makes them no sooner than after /etc/group.
        invocation.start.mountPoints();
        await this.pauseForTest("files", meta.id);
        checkNotAborted();
        const identity = this.identity(meta.id);
        await writeAll(group, Buffer.from(identity.group));
        close(group);
        const sandboxPid = await readChildPid(info, child);
        // bwrap failed before making the sandbox: its exit and message tell.
        if (sandboxPid === undefined) return;
        checkNotAborted();
        // Still bwrap's child, waiting for its /etc/passwd: a pid freed and taken again would be
        // someone else's. Else bwrap is on its way out, and its exit says why.
        const fields = statFields(sandboxPid);
        if (Number(fields?.[1]) !== child.pid) return close(passwd);
        await setRlimits(meta.limits, sandboxPid);
        const firstProcess: Partial<HolderState> = { target: { pid: sandboxPid, start: fields![19]! }, boot: bootId() };
        writeFileSync(join(this.dir(meta.id), FIRST_PROCESS_FILE), JSON.stringify(firstProcess));
        if (loading) {
          listenerFd = await loading
            .then(({ listenInNamespace }) => listenInNamespace(sandboxPid, child.pid, BRIDGE_PORT))
            .catch((error) => {
              throw new ProviderError("local", `cannot make the egress proxy's listener in the sandbox: ${(error as Error).message}`);
            });
          await this.pauseForTest("proxy", meta.id);
          checkNotAborted();
        }
        // A wrapper that died meanwhile leaves a sandbox half made: its first process must not go
        // on. No user: it ends at once (else spawnStreaming stops it, an orphan holding our output).
        if (child.exitCode !== null || child.signalCode !== null) return close(passwd);
        await writeAll(passwd, Buffer.from(identity.passwd));
        close(passwd);
        await this.pauseForTest("let-go", meta.id);
        // Here, not only once `open` is done: what follows waits for the program's first connection.
        sweepSoon();
        if (loading) await serveOnFirstUse(child);
      };
      // The listener sandbox-start made inside becomes the proxy's (takeListener), unless
      // SANDBOXES_LOCAL_EGRESS_LISTENER=off keeps it there with the bridge (tests).
      const takeOver = async (child: Subprocess) => {
        await this.pauseForTest("handover", meta.id);
        const { takeListener } = await import("./listeners");
        const take = this.ctx.env.SANDBOXES_LOCAL_EGRESS_LISTENER !== "off";
        const taken = await takeListener(listenerFd!, child.pid, take, () => child.exitCode !== null || child.signalCode !== null || signal?.aborted === true);
        if (taken === undefined) return;
        closeSync(listenerFd!);
        listenerFd = taken;
      };
      const serveOnFirstUse = async (child: Subprocess) => {
        const { connectionWaiting } = await import("./listeners");
        if (listenerFd !== undefined && (await firstUse(listenerFd, connectionWaiting, child.exited))) {
          await startProxy(listenerFd);
          listenerFd = undefined; // the proxy's now: its close() closes it
        }
      };
      if (handshake) {
        mkdirSync(this.root, { recursive: true, mode: 0o700 });
        infoFile = anonymousFile(this.root);
      }
      const start: StartWait | undefined = socketPath || handshake || root
        ? {
            // In descriptor order from FIRST_EXTRA_FD: the handshake's (info, group, passwd), then the root.
            fds: [...(infoFile !== undefined ? [infoFile, "pipe" as const, "pipe" as const] : []), ...(root ? ["pipe" as const] : [])],
            open: async (child, ends, close) => {
              const end = (fd: number) => ends[fd - FIRST_EXTRA_FD]!;
              if (root) await giveRoot(child, end(root.fd), close);
              if (handshake) await completeHandshake(child, { info: infoFile!, group: end(handshake.groupFd), passwd: end(handshake.passwdFd) }, close);
              if (invocation.start.handover) await takeOver(child);
              sweepSoon();
              if (socketPath) await serveOnFirstUse(child);
            },
          }
        : undefined;
      const killsBefore = memoryKills(meta.limits);
      if (!start) sweepSoon();
      // Not only the wrapper: a signal as it starts can orphan its inner process (bwrap sets
      // --die-with-parent only after its fork), which keeps our output open; killExecTree finds it.
      const outcome = await spawnStreaming(invocation, spec, (child, pipes) => killExecTree(child.pid, pipes), { start });
      const limitHit = memoryKills(meta.limits) > killsBefore && !outcome.timedOut ? { limitHit: "memory" as const } : {};
      return { ...outcome, ...limitHit, id: meta.id };
    } finally {
      await sweeping;
      if (listenerFd !== undefined) closeSync(listenerFd);
      if (infoFile !== undefined) closeSync(infoFile);
      await proxy?.close();
      await removeLimits(meta.limits);
      this.removeDirs(meta.id);
    }
  }

  /**
   * Passes the lines of the kept sandbox's proxy about blocked destinations (its --blocked-log)
   * that appear while a command runs to onNotice. Returns the function that stops watching.
   */
  private async reportBlocked(meta: LocalMeta, onNotice: ExecSpec["onNotice"]): Promise<() => void> {
    if (!onNotice || policyOf(meta).mode !== "default") return () => {};
    const { formatBlocked } = await import("./egress/proxy");
    const file = join(this.dir(meta.id), "blocked.log");
    let offset = existsSync(file) ? statSync(file).size : 0;
    let partial = "";
    const poll = () => {
      if (!existsSync(file)) return;
      const size = statSync(file).size;
      if (size <= offset) return;
      const fd = openSync(file, "r");
      const buffer = Buffer.alloc(size - offset);
      try {
        readSync(fd, buffer, 0, buffer.length, offset);
      } finally {
        closeSync(fd);
      }
      offset = size;
      const lines = (partial + buffer.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        try {
          if (line.trim()) onNotice(formatBlocked(JSON.parse(line)));
        } catch {
          /* not a whole JSON line: skip it */
        }
      }
    };
    const timer = setInterval(poll, 200);
    return () => {
      clearInterval(timer);
      poll();
    };
  }

  private readonly archives = archivesThroughExec((id, spec) => this.exec(id, spec));
  readonly putArchive = this.archives.putArchive;
  readonly getArchive = this.archives.getArchive;

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    this.ensureLinux();
    const meta = this.requireMeta(id);
    const state = await this.ensureHolder(meta);
    const invocation = await this.invocation(meta, spec.argv, spec.env, spec.cwd, { pty: true, enter: state });
    const output = new PtyOutput();
    let terminalClosed: () => void = () => {};
    const drained = new Promise<void>((resolve) => (terminalClosed = resolve));
    const child = Bun.spawn(invocation.argv, {
      env: invocation.env,
      terminal: {
        cols: spec.cols,
        rows: spec.rows,
        data: (_terminal: unknown, data: Uint8Array) => output.push(data),
        exit: () => terminalClosed(),
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
      // The terminal's last bytes may be read after the program's exit: end the output once the
      // terminal reports end of file, or shortly after the exit when a background process
      // still holds the terminal open.
      output: output.endWhen(exited.then(() => Promise.race([drained, Bun.sleep(200)]))),
      exited,
      kill: async () => {
        await killExecTree(child.pid);
        await child.exited;
      },
    };
  }
}

/**
 * argv that runs `program` inside a kept sandbox where sandbox-start cannot (else startEnterArgv):
 * nsenter joins the holder's namespaces (its user namespace first, as an ordinary user) and its
 * root; the program then drops to the sandbox's user and, unless it has a terminal, leads a
 * session of its own, which is what killExecTree kills on a timeout or Ctrl-C.
 */
function enterArgv(state: HolderState, layout: SandboxLayout, program: string[], pty: boolean): string[] {
  const argv = ["nsenter", "-t", String(state.target.pid)];
  if (layout.dropToUid === undefined) argv.push("--user", "--preserve-credentials");
  argv.push("--mount", "--pid", "--ipc", "--uts", "--root", "--wd");
  if (layout.network !== "host") argv.push("--net");
  argv.push("--", ...dropPrivileges(layout, true));
  if (!pty) argv.push("setsid");
  return [...argv, ...program];
}

/**
 * `argv` behind env(1) (and prlimit where no cgroup holds the limits), and the wrappers' own
 * environment: env(1) sets the sandbox's PATH and the directory, and drops what the wrappers add.
 */
function programWithEnv(limits: LimitPlan | undefined, layout: SandboxLayout, argv: string[], { inEnviron, inArgv }: SplitEnvironment, cwd: string | undefined): { program: string[]; spawnEnv: Record<string, string> } {
  // bwrap sets PWD; sh sets PWD and OLDPWD, bash also SHLVL and _. None belongs to the program.
  const addedByWrappers = ["PWD", "OLDPWD", "SHLVL", "_"].filter((name) => !(name in inEnviron) && !(name in inArgv));
  const program = rlimitArgv(limits?.rlimits, [
    "/usr/bin/env",
    ...addedByWrappers.flatMap((name) => ["-u", name]),
    `--chdir=${cwd ?? layout.callerHome}`,
    ...Object.entries(inArgv).map(([k, v]) => `${k}=${v}`),
    ...argv,
  ]);
  return { program, spawnEnv: { ...inEnviron, PATH: WRAPPER_PATH } };
}

/**
 * What a wrapper waits for before its program starts (runOnce): the wrapper gets `fds` more
 * descriptors from fd 3 on, a socket pair for each "pipe" and otherwise one of ours as it is, and
 * `open` gets our ends once it runs. Whatever `open` writes lets the program start; if it
 * throws, the wrapper is stopped, the program never having run. Our ends of the socket pairs are
 * closed once the wrapper has exited, or before by `close` (an end of file for the wrapper).
 */
interface StartWait {
  fds: Array<"pipe" | number>;
  open(child: Subprocess, ends: number[], close: (end: number) => void): Promise<void>;
}

/** What starts a one-shot program: see oneShotInvocation and StartWait. */
interface OneShotStart {
  /**
   * The proxy's unix socket (made here: listeners.ts), where sandbox-start inside hands over the
   * listener it made (`handover`, takeListener), or else the bridge inside connects.
   */
  socketPath?: string;
  handover?: boolean;
  /** As root with bubblewrap: the sandbox's files, and what it needs in its namespaces, are finished while bwrap starts. */
  handshake?: BwrapHandshake;
  /** The sandbox's proxy listener is made from here in its network namespace (listeners.ts), in the handshake. */
  listen?: boolean;
  /** Makes on disk what the root binds besides the sandbox's files (bwrap looks them up first), once those exist. */
  prepare(): void;
  /**
   * Makes the mount points in the sandbox's home (prepareMountPoints). With the handshake, once
   * bwrap has its root: bwrap mounts there only after it has read /etc/group.
   */
  mountPoints(): void;
  /**
   * bwrap reads the sandbox's root (`argv`) from descriptor `fd` (bwrapArgv's rootFrom). Made
   * once bwrap is spawned: bwrap has its own start to do first.
   */
  root?: { fd: number; argv(): string[] };
}

type Invocation = { argv: string[]; env: Record<string, string> };
type Subprocess = ReturnType<typeof Bun.spawn>;

/**
 * Writes all of `data` to a descriptor of ours, which may be non-blocking, for the wrapper to read.
 * A wrapper that is gone (EPIPE) ends it: the wrapper's exit says why.
 */
async function writeAll(fd: number, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length; ) {
    try {
      offset += writeSync(fd, data, offset);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EPIPE" || code === "ECONNRESET") return;
      if (code !== "EAGAIN") throw error;
      await Bun.sleep(1);
    }
  }
}

/**
 * How often firstUse looks at the listener: after FIRST_POLL_MS, then each time twice as long
 * after the last look, up to LATEST_POLL_MS. A program that connects at once is served within a
 * millisecond or two; one that connects later waits about as long again as it had run (at most
 * LATEST_POLL_MS), plus the proxy's start. A program that never connects wakes this process a
 * handful of times rather than every millisecond: each wake-up takes a core from the sandbox's
 * own start on a small machine (~2 ms of a one-shot `true` on two cores, measured).
 */
const FIRST_POLL_MS = 1;
const LATEST_POLL_MS = 20;

/**
 * Waits until the program first connects to its listener (`waiting`): true, the proxy is wanted;
 * false when the program ended first. Not on a timer: a program that runs long without the
 * network never pays for loading the proxy (tens of milliseconds of CPU, taken from the program
 * on a small machine).
 */
async function firstUse(listener: number, waiting: (fd: number) => boolean, exited: Promise<unknown>): Promise<boolean> {
  let ended = false;
  void exited.then(() => (ended = true));
  for (let pause = FIRST_POLL_MS; !ended; pause = Math.min(pause * 2, LATEST_POLL_MS)) {
    if (waiting(listener)) return true;
    await Promise.race([Bun.sleep(pause), exited]);
  }
  return false;
}

/**
 * The host pid of the sandbox's first process, from bwrap's --info-fd ({"child-pid": N, ...}),
 * a file of ours that bwrap writes within a few milliseconds of its start; undefined when bwrap
 * ended first (it could not make the sandbox and says why on stderr).
 */
async function readChildPid(file: number, wrapper: Subprocess): Promise<number | undefined> {
  const buffer = Buffer.alloc(4096);
  for (;;) {
    // Before the read: what bwrap wrote before it ended is read then.
    const ended = wrapper.exitCode !== null || wrapper.signalCode !== null;
    const count = readSync(file, buffer, 0, buffer.length, 0);
    const match = /"child-pid":\s*(\d+)/.exec(buffer.toString("utf8", 0, count));
    if (match) return Number(match[1]);
    if (ended) return undefined;
    await Bun.sleep(1);
  }
}

/**
 * A file of ours with no name, gone once closed: O_TMPFILE in `dir` (Node names no constant for
 * it: __O_TMPFILE, the same on every Linux architecture we build for, with O_DIRECTORY, which is
 * not), or where the file system cannot (overlayfs before Linux 6.6, as in many containers; or
 * `tmpfile` false, for tests), a file removed as soon as it is open.
 */
export function anonymousFile(dir: string, tmpfile = true): number {
  const O_TMPFILE = 0o20000000 | fsConstants.O_DIRECTORY;
  try {
    if (!tmpfile) throw new Error("no O_TMPFILE");
    return openSync(dir, O_TMPFILE | fsConstants.O_RDWR, 0o600);
  } catch {
    const path = join(dir, `.tmp-${crypto.randomUUID()}`);
    const fd = openSync(path, "wx+", 0o600);
    rmSync(path, { force: true });
    return fd;
  }
}

/**
 * Runs a wrapper with live stdout/stderr, the timeout and Ctrl-C; `kill` stops what it started.
 * With `start`, the program starts only once start.open has let it (StartWait).
 * In a kept sandbox (`inKept`) the command's stdio is noted as it starts, so that the processes
 * it leaves running are found (killExecTree on a timeout) or let go (outputEnd when it exits).
 */
async function spawnStreaming(
  invocation: Invocation,
  spec: ExecSpec,
  kill: (child: Subprocess, pipes: Set<string>) => void | Promise<void>,
  { start, inKept = false }: { start?: StartWait; inKept?: boolean } = {},
): Promise<ExecOutcome> {
  // A signal during the set-up: nothing is started, and the caller's clean-up runs.
  if (spec.signal?.aborted) throw new InterruptedError((spec.signal.reason as StopReason) ?? "SIGINT");
  let child: Subprocess;
  try {
    child = Bun.spawn(invocation.argv, {
      stdio: [spec.stdin ?? "ignore", spec.stdoutFd ?? "pipe", "pipe", ...(start?.fds ?? [])],
      env: invocation.env,
    });
  } catch (error) {
    throw spawnFailed(error, invocation);
  }
  // The child's output pipes, read at once, while it surely runs (the wrapper lives as long as
  // the command): every process of the command inherits them, so the processes that hold them
  // are the ones to stop, even one that lost its parent. Only the pipes we made: never stdin
  // (Bun may hand the user's own pipe through, whose writer is the user's process, outside the
  // sandbox) nor our stdout when the program writes to it directly (stdoutFd): its reader
  // holds that too.
  const pipes = stdioPipes(child.pid, spec.stdoutFd === undefined ? [1, 2] : [2]);
  let timedOut = false;
  let stopped = false;
  const stop = () => {
    stopped = true;
    void kill(child, pipes);
  };
  const timer = spec.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), spec.timeoutMs) : undefined;
  spec.signal?.addEventListener("abort", stop, { once: true });
  const readers: Array<ReadableStreamDefaultReader<Uint8Array>> = [];
  let lastChunkAt = performance.now();
  let letGo = false;
  // Awaiting the sink before reading on passes a slow reader's pace back to the program.
  const pump = async (stream: ReadableStream<Uint8Array> | number | null | undefined, sink: (chunk: Uint8Array) => unknown) => {
    if (!(stream instanceof ReadableStream)) return;
    const reader = stream.getReader();
    readers.push(reader);
    try {
      for (let read = await reader.read(); !read.done; read = await reader.read()) {
        lastChunkAt = performance.now();
        await sink(read.value);
      }
    } catch (error) {
      if (letGo) return;
      // A sink that failed: stop reading, as leaving a for-await loop would.
      void reader.cancel().catch(() => {});
      throw error;
    }
  };
  // Our ends of the start's socket pairs, closed once the wrapper has exited (below), unless
  // `open` closes one before: an end of file is what some of them mean (the root).
  const ends = start ? (child.stdio.slice(3) as number[]) : [];
  const openEnds = new Set(ends.filter((_, i) => start!.fds[i] === "pipe"));
  const close = (end: number) => {
    if (openEnds.delete(end)) closeSync(end);
  };
  const open = async (wait: StartWait) => {
    try {
      await wait.open(child, ends, close);
    } catch (error) {
      // Stopped meanwhile (a timeout or Ctrl-C, which took the sandbox away from under `open`),
      // or bwrap gave up by itself: that is what the exit says, not how `open` failed then.
      if (!(error instanceof InterruptedError) && (stopped || child.exitCode !== null)) return;
      stop();
      await child.exited;
      throw error;
    }
  };
  try {
    const pumping = Promise.all([pump(child.stdout as ReadableStream<Uint8Array> | number, spec.onStdout), pump(child.stderr as ReadableStream<Uint8Array>, spec.onStderr)]);
    const opening = start ? open(start) : undefined;
    opening?.catch(() => {}); // awaited below, once the wrapper has exited
    // A failed pump ends the wait at once; otherwise the output is awaited after the exit.
    const code = await Promise.race([child.exited, pumping.then(() => child.exited)]);
    await opening;
    if (inKept) {
      await outputEnd(pumping, pipes, () => lastChunkAt, () => {
        letGo = true;
        for (const reader of readers) void reader.cancel().catch(() => {});
      });
    } else {
      // Everything in a one-shot sandbox dies with its wrapper (its pid namespace goes). A
      // process that got out before bwrap could tie it to itself would hold our output open for
      // ever: stop whatever still holds it once the wrapper has been gone a while.
      const orphans = setTimeout(() => void killExecTree(undefined, pipes), ORPHANED_OUTPUT_MS);
      try {
        await pumping;
      } finally {
        clearTimeout(orphans);
      }
    }
    if (timedOut) return { exitCode: 124, timedOut: true };
    const signalCode = child.signalCode ? signalNumber(child.signalCode) : undefined;
    return { exitCode: signalCode !== undefined ? 128 + signalCode : code, timedOut: false };
  } finally {
    if (timer) clearTimeout(timer);
    spec.signal?.removeEventListener("abort", stop);
    // Bun does not close an extra pipe it made: without this every run would leak a descriptor.
    for (const end of openEnds) closeSync(end);
  }
}

/** How long a one-shot run's output may stay open after its wrapper has exited (spawnStreaming). */
const ORPHANED_OUTPUT_MS = 500;

/** Why the wrapper could not start, in words a user can act on. */
function spawnFailed(error: unknown, invocation: { argv: string[]; env: Record<string, string> }): SandboxesError {
  const message = (error as Error).message ?? String(error);
  if ((error as NodeJS.ErrnoException).code === "E2BIG" || /E2BIG|argument list too long/i.test(message)) {
    const bytes = invocation.argv.reduce((sum, arg) => sum + Buffer.byteLength(arg) + 1, 0);
    return new SandboxesError(
      "argument_list_too_long",
      `the argument list is too long for the kernel (${bytes} bytes of command line; one argument may be at most 128 KiB)`,
      "user",
      "put the code in a file and pass --file, pipe it on stdin with --lang, or copy data in with --upload",
    );
  }
  return new ProviderError("local", `cannot start the sandbox: ${message}`, undefined, undefined, "install bubblewrap (apt-get install bubblewrap) or util-linux");
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
 * and the shell's (ACTS_ON_WRAPPERS), and PATH is the wrappers' own (sandbox-start, static,
 * has no dynamic loader, but glibc's tunables act on it too). env(1) sets those inside, after
 * the wrappers.
 */
type SplitEnvironment = { inEnviron: Record<string, string>; inArgv: Record<string, string> };

export function splitEnvironment(environment: Record<string, string>): SplitEnvironment {
  const inEnviron = dict<string>();
  const inArgv = dict<string>();
  for (const [name, value] of Object.entries(environment)) {
    const actsOnWrappers = ACTS_ON_WRAPPERS.has(name) || ["LD_", "MALLOC_", "GLIBC_"].some((prefix) => name.startsWith(prefix));
    (actsOnWrappers ? inArgv : inEnviron)[name] = value;
  }
  return { inEnviron, inArgv };
}

/**
 * The uid a sandbox's processes run as when we run as root: 200000 plus its id's last six hex
 * digits modulo 100000, the same for its whole life and for every command that enters it.
 */
export function uidOfId(id: string): number {
  return 200000 + (parseInt(id.slice(-6), 16) % 100000);
}

/**
 * A new sandbox id whose uid (uidOfId) none of `existing` has: as root two sandboxes of one uid
 * would share one process count (RLIMIT_NPROC), so one's processes could starve the other's.
 * `random`: 12 random hex digits. Web Crypto, a global: node:crypto would cost every run a few ms
 * to load; a v4 UUID's last 12 hex digits are random (48 bits), and randomUUID is cheaper than
 * bytes through a Buffer.
 */
export function newSandboxId(existing: readonly string[], random: () => string = () => crypto.randomUUID().slice(-12)): string {
  const taken = new Set(existing.filter((id) => ID_PATTERN.test(id)).map(uidOfId));
  for (;;) {
    const id = `local-${random()}`;
    if (!taken.has(uidOfId(id))) return id;
  }
}
