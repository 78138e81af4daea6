/**
 * The container side of a fake Cloudflare Sandbox: what the Sandbox Durable Object and its
 * container do, run for real on this machine. Each container is a directory with its own
 * /workspace and /tmp: a process holds a mount namespace whose root is a tmpfs with this
 * machine's top-level directories bound in, the container's directories over /workspace, /tmp
 * and /root, and chroots into it. Every command enters that namespace and root (nsenter), so
 * `cd /workspace` and `/tmp` work as in the real container. Destroying a container kills every
 * process in its namespace.
 *
 * Like the real container, a command is a shell string run by bash, and its output reaches the
 * caller as text (decoded as UTF-8), which is what the Durable Object's onOutput callback carries.
 */
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, chmodSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";

export interface FakeContainer {
  key: string;
  dir: string;
  holder: Subprocess;
  namespace: string;
  /** Commands and terminals running right now. */
  processes: Set<Subprocess>;
}

export interface TerminalHandle {
  write(data: Uint8Array): void;
  resize(cols: number, rows: number): void;
  kill(): void;
  exited: Promise<number>;
}

const HOLDER_SCRIPT = [
  'd=$1; r=$d/root',
  'mount -t tmpfs fake-cloudflare-root "$r" || exit 1',
  'for p in /*; do',
  '  n=${p#/}',
  '  case "$n" in tmp|workspace|root|proc) continue;; esac',
  '  if [ -L "$p" ]; then ln -s "$(readlink "$p")" "$r/$n"',
  '  elif [ -d "$p" ]; then mkdir "$r/$n" && mount --rbind "$p" "$r/$n" 2>/dev/null || rmdir "$r/$n" 2>/dev/null',
  '  fi',
  'done',
  'mkdir "$r/tmp" "$r/workspace" "$r/root" "$r/proc" || exit 1',
  'mount --bind "$d/tmp" "$r/tmp" && mount --bind "$d/workspace" "$r/workspace" && mount -t tmpfs fake-cloudflare-home "$r/root" && mount --rbind /proc "$r/proc" || exit 1',
  'echo ready',
  'exec chroot "$r" /bin/sh -c "exec sleep 2147483647"',
].join("\n");

/** Inside the container: into the working directory, then the command string through bash. */
const ENTER_SCRIPT = 'cd "$1" 2>/dev/null || { echo "cd: $1: No such file or directory" >&2; exit 1; }; exec /bin/bash -c "$2"';

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

export function exitCodeOf(child: Subprocess): number {
  if (child.exitCode !== null) return child.exitCode;
  return 128 + (SIGNALS[child.signalCode ?? ""] ?? 9);
}

export class Containers {
  readonly live = new Map<string, FakeContainer>();
  private readonly root: string;
  private readonly asRoot = process.getuid?.() === 0;

  constructor() {
    this.root = mkdtempSync(join(process.env.TMPDIR ?? "/tmp", "fake-cloudflare-"));
  }

  async start(key: string): Promise<FakeContainer> {
    const dir = mkdtempSync(join(this.root, "container-"));
    for (const sub of ["tmp", "workspace", "root"]) mkdirSync(join(dir, sub));
    chmodSync(join(dir, "tmp"), 0o1777);
    const holder = Bun.spawn(["unshare", "--mount", ...(this.asRoot ? [] : ["--map-root-user"]), "/bin/sh", "-c", HOLDER_SCRIPT, "fake-cloudflare", dir], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = (holder.stdout as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    reader.releaseLock();
    if (first.done || !new TextDecoder().decode(first.value).startsWith("ready")) {
      const why = await new Response(holder.stderr as ReadableStream<Uint8Array>).text();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`fake container could not start: ${why.trim()}`);
    }
    // The holder chroots right after "ready": wait until its root is the new one.
    for (let i = 0; i < 100 && readlinkSync(`/proc/${holder.pid}/root`) === "/"; i++) await Bun.sleep(10);
    const container: FakeContainer = { key, dir, holder, namespace: readlinkSync(`/proc/${holder.pid}/ns/mnt`), processes: new Set() };
    this.live.set(key, container);
    return container;
  }

  private enter(container: FakeContainer): string[] {
    return ["nsenter", "--target", String(container.holder.pid), "--mount", ...(this.asRoot ? [] : ["--user", "--preserve-credentials"]), "--root", "--wd"];
  }

  private env(extra: Record<string, string> = {}): Record<string, string> {
    return { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", HOME: "/root", LANG: "C.UTF-8", ...extra };
  }

  /** A command string run by bash in the container; output as text, in order, per stream. */
  async exec(
    container: FakeContainer,
    command: string,
    options: { cwd?: string; timeoutMs?: number },
    onOutput?: (stream: "stdout" | "stderr", text: string) => void,
  ): Promise<{ exitCode: number; stdout: string; stderr: string; timedOut: boolean }> {
    const child = Bun.spawn([...this.enter(container), "/bin/sh", "-c", ENTER_SCRIPT, "fake-cloudflare", options.cwd ?? "/workspace", command], {
      env: this.env(),
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    container.processes.add(child);
    const collected = { stdout: "", stderr: "" };
    const pump = async (readable: ReadableStream<Uint8Array>, stream: "stdout" | "stderr") => {
      const decoder = new TextDecoder();
      for await (const chunk of readable) {
        const text = decoder.decode(chunk, { stream: true });
        if (!text) continue;
        collected[stream] += text;
        onOutput?.(stream, text);
      }
      const rest = decoder.decode();
      if (rest) {
        collected[stream] += rest;
        onOutput?.(stream, rest);
      }
    };
    let timedOut = false;
    const timer = options.timeoutMs ? setTimeout(() => ((timedOut = true), child.kill("SIGKILL")), options.timeoutMs) : undefined;
    const pumps = Promise.all([pump(child.stdout as ReadableStream<Uint8Array>, "stdout"), pump(child.stderr as ReadableStream<Uint8Array>, "stderr")]);
    await child.exited;
    // The command's end is its process's end, even when something it left behind holds the pipes.
    await Promise.race([pumps, Bun.sleep(300)]);
    if (timer) clearTimeout(timer);
    container.processes.delete(child);
    return { exitCode: exitCodeOf(child), timedOut, ...collected };
  }

  /** A container path as seen from this machine (through the holder's root). */
  private hostPath(container: FakeContainer, path: string): string {
    return `/proc/${container.holder.pid}/root${path}`;
  }

  async writeFile(container: FakeContainer, path: string, bytes: Uint8Array): Promise<void> {
    await writeFile(this.hostPath(container, path), bytes);
  }

  /** The file's bytes; null when there is no such file. */
  async readFile(container: FakeContainer, path: string): Promise<Uint8Array | null> {
    const host = this.hostPath(container, path);
    try {
      if (!statSync(host).isFile()) return null;
      return new Uint8Array(await readFile(host));
    } catch {
      return null;
    }
  }

  /** `shell` (a program path) in a terminal, as the container's PTY manager starts it. */
  terminal(container: FakeContainer, options: { cols: number; rows: number; shell: string; onData: (data: Uint8Array) => void }): TerminalHandle {
    const child = Bun.spawn([...this.enter(container), "/bin/sh", "-c", 'cd /workspace && exec "$0"', options.shell], {
      env: this.env({ TERM: "xterm-256color" }),
      terminal: { cols: options.cols, rows: options.rows, data: (_t: unknown, data: Uint8Array) => options.onData(data) },
    } as Parameters<typeof Bun.spawn>[1]);
    container.processes.add(child);
    const terminal = (child as unknown as { terminal: { write(d: Uint8Array): void; resize(c: number, r: number): void; close(): void } }).terminal;
    const exited = child.exited.then(async () => {
      container.processes.delete(child);
      await Bun.sleep(50);
      return exitCodeOf(child);
    });
    return {
      write: (data) => terminal.write(data),
      resize: (cols, rows) => terminal.resize(cols, rows),
      kill: () => child.kill("SIGKILL"),
      exited: exited.finally(() => terminal.close()),
    };
  }

  /** Every process of this machine inside the container's mount namespace. */
  processesOf(container: FakeContainer): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readlinkSync(`/proc/${entry}/ns/mnt`) === container.namespace) pids.push(Number(entry));
      } catch {}
    }
    return pids;
  }

  destroy(key: string): void {
    const container = this.live.get(key);
    if (!container) return;
    this.live.delete(key);
    for (const pid of this.processesOf(container)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    try {
      container.holder.kill("SIGKILL");
    } catch {}
    rmSync(container.dir, { recursive: true, force: true });
  }

  close(): void {
    for (const key of [...this.live.keys()]) this.destroy(key);
    rmSync(this.root, { recursive: true, force: true });
  }
}
