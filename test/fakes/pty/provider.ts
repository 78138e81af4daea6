/**
 * A fake provider for the interactive core: each sandbox is a temp directory, commands run for
 * real as local `sh -c` processes (PTYs through Bun's terminal support), capabilities are
 * configurable, faults can be injected, and `alive` shows what was not destroyed.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PtyOutput } from "../../../src/providers/shared/pty";
import { type ArchiveSource, type Capabilities, type ExecOutcome, type ExecSpec, type Provider, type ProviderDescriptor, type PtySession, type PtySpec, type SandboxRecord, wholeArchive } from "../../../src/providers/types";

export interface FakeFaults {
  openPty?: Error;
}

export class FakeProvider implements Provider {
  readonly name: string;
  readonly root = mkdtempSync(join(tmpdir(), "sandboxes-fake-pty-"));
  readonly alive = new Map<string, SandboxRecord>();
  readonly ptySpecs: PtySpec[] = [];
  readonly resizes: Array<[number, number]> = [];
  faults: FakeFaults = {};
  /** Runs on every new sandbox directory (to preinstall programs, as an image would). */
  onCreate?: (dir: string) => void;
  private counter = 0;

  constructor(name: string, readonly capabilities: Capabilities) {
    this.name = name;
  }

  async create(spec: { name?: string; labels: Record<string, string> }): Promise<SandboxRecord> {
    const id = `${this.name}-${++this.counter}`;
    mkdirSync(join(this.root, id));
    this.onCreate?.(join(this.root, id));
    const record: SandboxRecord = { id, provider: this.name, name: spec.name, state: "running", labels: spec.labels, createdAt: new Date().toISOString() };
    this.alive.set(id, record);
    return record;
  }

  async get(id: string) {
    return this.alive.get(id) ?? null;
  }

  async list() {
    return [...this.alive.values()];
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const child = Bun.spawn(spec.argv, { cwd: spec.cwd ? this.inside(id, spec.cwd) : join(this.root, id), env: { PATH: process.env.PATH, HOME: join(this.root, id), ...spec.env }, stdin: spec.stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
    const pump = async (stream: ReadableStream<Uint8Array>, sink: (c: Uint8Array) => void) => {
      for await (const chunk of stream) sink(chunk);
    };
    const [code] = await Promise.all([child.exited, pump(child.stdout, spec.onStdout), pump(child.stderr, spec.onStderr)]);
    return { exitCode: code, timedOut: false };
  }

  /** Paths are inside the sandbox directory, which is also its $HOME. */
  private inside(id: string, path: string): string {
    return join(this.root, id, path.startsWith(join(this.root, id)) ? path.slice(join(this.root, id).length) : path);
  }

  async putArchive(id: string, dir: string, tar: ArchiveSource): Promise<void> {
    mkdirSync(this.inside(id, dir), { recursive: true });
    await new Bun.Archive(await wholeArchive(tar)).extract(this.inside(id, dir));
  }

  async destroy(id: string): Promise<void> {
    this.alive.delete(id);
    rmSync(join(this.root, id), { recursive: true, force: true });
  }

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    if (this.faults.openPty) throw this.faults.openPty;
    this.ptySpecs.push(spec);
    const output = new PtyOutput();
    let terminalClosed: () => void = () => {};
    const drained = new Promise<void>((resolve) => (terminalClosed = resolve));
    const child = Bun.spawn(spec.argv, {
      cwd: spec.cwd ? this.inside(id, spec.cwd) : join(this.root, id),
      env: { PATH: process.env.PATH, ...spec.env },
      terminal: { cols: spec.cols, rows: spec.rows, data: (_t: unknown, d: Uint8Array) => output.push(new Uint8Array(d)), exit: () => terminalClosed() },
    } as Parameters<typeof Bun.spawn>[1]);
    const terminal = (child as unknown as { terminal: { write(d: string | Uint8Array): void } }).terminal;
    return {
      write: (data) => terminal.write(data),
      resize: (cols, rows) => void this.resizes.push([cols, rows]),
      output: output.endWhen(child.exited.then(() => Promise.race([drained, Bun.sleep(200)]))),
      exited: child.exited,
      kill: async () => {
        child.kill("SIGKILL");
        await child.exited;
      },
    };
  }

  descriptor(): ProviderDescriptor {
    return {
      name: this.name,
      description: "fake provider for the interactive core tests",
      capabilities: this.capabilities,
      detect: async () => ({ configured: true, source: "test" }),
      load: async () => this,
    };
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
