#!/usr/bin/env bun
/**
 * Cross-compiles the standalone release binaries into dist/release/ and writes SHA256SUMS.
 *
 *   bun run scripts/build-binaries.ts                       every target
 *   bun run scripts/build-binaries.ts --only host           just this machine's target
 *   bun run scripts/build-binaries.ts --only linux-x64,darwin-arm64 [--outdir dir]
 *   bun run scripts/build-binaries.ts --outfile dist/sandboxes   this machine's binary, release flags
 *
 * Bun fetches each target's runtime from the npm registry on first use (cached afterwards in
 * ~/.bun/install/cache). The version is package.json's, which is also what `--version` prints.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";

export interface ReleaseTarget {
  /** Our name; the asset is `sandboxes-<name>[.exe]`. */
  name: string;
  /** Bun's `--target`. */
  bunTarget: string;
  os: "linux" | "darwin" | "windows";
  arch: "x64" | "arm64";
}

const target = (name: string, os: ReleaseTarget["os"], arch: ReleaseTarget["arch"], variant = ""): ReleaseTarget => ({
  name,
  bunTarget: `bun-${os}-${arch}${variant}`,
  os,
  arch,
});

/** Baseline builds are for x64 CPUs without AVX2; musl builds for Alpine and other musl distros. */
export const TARGETS: readonly ReleaseTarget[] = [
  target("linux-x64", "linux", "x64"),
  target("linux-x64-baseline", "linux", "x64", "-baseline"),
  target("linux-arm64", "linux", "arm64"),
  target("linux-x64-musl", "linux", "x64", "-musl"),
  target("linux-x64-musl-baseline", "linux", "x64", "-musl-baseline"),
  target("linux-arm64-musl", "linux", "arm64", "-musl"),
  target("darwin-x64", "darwin", "x64"),
  target("darwin-arm64", "darwin", "arm64"),
  target("windows-x64", "windows", "x64"),
];

export function assetName(t: ReleaseTarget): string {
  return `sandboxes-${t.name}${t.os === "windows" ? ".exe" : ""}`;
}

const ROOT = resolve(import.meta.dir, "..");

/** The target this machine runs (what install.sh would pick, minus the AVX2 check). */
export function hostTarget(): ReleaseTarget {
  const os = process.platform === "win32" ? "windows" : process.platform;
  const arch = process.arch;
  const report = process.report?.getReport?.() as { header?: { glibcVersionRuntime?: string } } | undefined;
  const musl = os === "linux" && !report?.header?.glibcVersionRuntime;
  const name = `${os}-${arch}${musl ? "-musl" : ""}`;
  const found = TARGETS.find((t) => t.name === name);
  if (!found) throw new Error(`no release target for this machine (${name})`);
  return found;
}

function selectTargets(only: string | undefined): ReleaseTarget[] {
  if (!only) return [...TARGETS];
  return only.split(",").map((raw) => {
    const name = raw.trim();
    if (name === "host") return hostTarget();
    const found = TARGETS.find((t) => t.name === name);
    if (!found) throw new Error(`unknown target "${name}"; known: host, ${TARGETS.map((t) => t.name).join(", ")}`);
    return found;
  });
}

async function sha256(path: string): Promise<string> {
  const hasher = new Bun.CryptoHasher("sha256");
  for await (const chunk of Bun.file(path).stream()) hasher.update(chunk);
  return hasher.digest("hex");
}

/** How many times more reluctant than normal the JIT is while a binary starts (see main.ts). */
export const START_UP_JIT_POLICY = 100;

/**
 * Flags for every release binary (and what `bun run build` should use for dist/sandboxes).
 * --bytecode: no parsing at start-up. --splitting: each lazily imported module (a command, a
 * provider and its SDK) is its own chunk inside the binary, loaded with its node: built-ins only
 * when first imported; without it the SDKs' code and built-ins are all paid for at start-up.
 * Identifiers are not minified: SDKs and our error handling read class names (error.name,
 * constructor.name), and Bun 1.4's --keep-names does not keep them.
 * No .env or bunfig.toml autoload: a CLI run inside someone's project must not pick those up.
 * --compile-jit-policy: start-up code runs once, and JavaScriptCore compiling it on the main
 * thread costs a command milliseconds for nothing; main.ts sets the normal policy back once the
 * process has lived long enough to be doing the long work (output pumping, a proxy, a server).
 */
export const COMPILE_FLAGS = [
  "--compile", "--minify-syntax", "--minify-whitespace", "--sourcemap=none",
  "--bytecode", "--format=esm", "--splitting", `--compile-jit-policy=${START_UP_JIT_POLICY}`,
  // Libraries check NODE_ENV for their production paths; the same as package.json's build.
  "--define", 'process.env.NODE_ENV="production"',
  "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
];

/**
 * Compiles `entry` with the release flags; bunTarget defaults to this machine. bytecodeOrder:
 * profiles that recordBytecodeOrder wrote (Bun's --bytecode-order). embedded: files the binary
 * carries (Bun.embeddedFiles), under their names with a hash of their contents.
 */
export async function compileEntry(entry: string, outfile: string, bunTarget?: string, bytecodeOrder: string[] = [], embedded: string[] = []): Promise<void> {
  const args = [
    process.execPath, "build", ...COMPILE_FLAGS,
    ...(bunTarget ? [`--target=${bunTarget}`] : []),
    ...(bytecodeOrder.length ? [`--bytecode-order=${bytecodeOrder.join(",")}`] : []),
    entry, ...embedded, "--outfile", outfile,
  ];
  const proc = Bun.spawn(args, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`bun build ${bunTarget ? `--target=${bunTarget} ` : ""}${entry} failed (exit ${code}):\n${stderr || stdout}`);
}

/**
 * The starts the bytecode is laid out for, most common first: the main job (a one-shot local
 * run, default network policy), then the quick answers.
 */
const PROFILED_STARTS = [["run", "-p", "local", "true"], ["--version"], ["providers"]];

/**
 * Runs `binary` (built for this machine) once per PROFILED_STARTS with BUN_BYTECODE_ORDER_OUT,
 * in a home of its own under `dir`, and returns the profiles written. Bun then puts the bytecode
 * those starts used at the front of the executable, together: fewer pages to read and link as
 * it starts. A profile applies to every target and to later builds of the same code, so one
 * that could not be recorded here (no bubblewrap on a build machine: the run fails early) only
 * costs start-up, never correctness.
 */
export function recordBytecodeOrder(binary: string, dir: string): string[] {
  const home = join(dir, "home");
  mkdirSync(home, { recursive: true });
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local/state"),
    NO_COLOR: "1", DOCKER_HOST: "unix:///nonexistent",
  };
  const profiles: string[] = [];
  PROFILED_STARTS.forEach((args, index) => {
    const profile = join(dir, `start-${index}.order`);
    Bun.spawnSync([binary, ...args], { env: { ...env, BUN_BYTECODE_ORDER_OUT: profile }, stdout: "ignore", stderr: "ignore", timeout: 30_000 });
    if (existsSync(profile) && statSync(profile).size > 0) profiles.push(profile);
  });
  return profiles;
}

/** The C compiler for a Linux CPU, and the Debian packages that bring it. */
const CROSS_COMPILERS: Record<ReleaseTarget["arch"], { cc: string; packages: string }> = {
  x64: { cc: "x86_64-linux-gnu-gcc", packages: "gcc-x86-64-linux-gnu libc6-dev-amd64-cross" },
  arm64: { cc: "aarch64-linux-gnu-gcc", packages: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross" },
};

/**
 * Builds sandbox-start (src/providers/local/sandbox-start.c), the first process of a
 * one-shot local sandbox, static for a Linux CPU into `outfile`: with this machine's `cc` for its
 * own CPU, else with Debian's cross compiler. Static, so that it starts without loading anything
 * (the reason it exists) and runs on glibc and musl hosts alike.
 */
export async function compileStartHelper(arch: ReleaseTarget["arch"], outfile: string): Promise<void> {
  const cross = CROSS_COMPILERS[arch];
  const native = process.platform === "linux" && process.arch === arch;
  const cc = native ? (Bun.which("cc") ?? Bun.which("gcc")) : Bun.which(cross.cc);
  if (!cc) {
    throw new Error(native
      ? "cannot build sandbox-start: no C compiler (cc) on this machine; install one (Debian: apt-get install gcc libc6-dev)"
      : `cannot build sandbox-start for linux-${arch}: ${cross.cc} is not installed (Debian: apt-get install ${cross.packages})`);
  }
  const source = join(ROOT, "src/providers/local/sandbox-start.c");
  mkdirSync(dirname(outfile), { recursive: true });
  const proc = Bun.spawn([cc, "-O2", "-static", "-s", "-Wall", "-o", outfile, source], { stdout: "pipe", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${cc} sandbox-start.c failed (exit ${code}):\n${stderr}`);
}

/**
 * Builds src/main.ts for each target with its bytecode laid out for start-up: a first build for
 * this machine records the profiles (recordBytecodeOrder), then each target is built with them.
 * A Linux target carries sandbox-start for its CPU (compileStartHelper, into startHelperFile).
 */
async function compileSandboxes(outputs: Array<{ outfile: string; bunTarget?: string }>, onBuilt: (outfile: string, seconds: number) => Promise<void> | void = () => {}): Promise<void> {
  const main = join(ROOT, "src/main.ts");
  const work = mkdtempSync(join(tmpdir(), "sandboxes-build-"));
  const helpers = new Map<string, string>();
  const embeddedFor = async (bunTarget: string | undefined): Promise<string[]> => {
    const [os, arch] = bunTarget ? bunTarget.split("-").slice(1, 3) : [process.platform, process.arch];
    if (os !== "linux" || (arch !== "x64" && arch !== "arm64")) return [];
    if (!helpers.has(arch)) {
      // Its name is how the binary finds it among its embedded files (start.ts).
      const helper = startHelperFile(arch);
      await compileStartHelper(arch, helper);
      helpers.set(arch, helper);
    }
    return [helpers.get(arch)!];
  };
  try {
    await compileEntry(main, join(work, "sandboxes"), undefined, [], await embeddedFor(undefined));
    const profiles = recordBytecodeOrder(join(work, "sandboxes"), work);
    for (const { outfile, bunTarget } of outputs) {
      const started = performance.now();
      await compileEntry(main, outfile, bunTarget, profiles, await embeddedFor(bunTarget));
      await onBuilt(outfile, (performance.now() - started) / 1000);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * This machine's sandboxes binary with the release flags and start-up profile (`npm run build`),
 * and on Linux its sandbox-start (startHelperFile), for runs from the sources too.
 */
export async function compileHostBinary(outfile: string): Promise<void> {
  await compileSandboxes([{ outfile }]);
}

/**
 * Where a run from the sources (the npm package, `bun src/main.ts`) finds sandbox-start for its
 * CPU (src/providers/local/start.ts): `npm run build` writes this machine's, `--start-helpers`
 * both (before `npm publish`: package.json's files carry them).
 */
export function startHelperFile(arch: ReleaseTarget["arch"]): string {
  return join(ROOT, `dist/sandbox-start-linux-${arch}`);
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

export interface BuildResult {
  outdir: string;
  version: string;
  assets: { target: string; file: string; bytes: number; sha256: string; seconds: number }[];
}

export async function buildRelease(options: { only?: string; outdir?: string; log?: (line: string) => void } = {}): Promise<BuildResult> {
  const log = options.log ?? (() => {});
  const outdir = resolve(options.outdir ?? join(ROOT, "dist/release"));
  const targets = selectTargets(options.only);
  const version = packageVersion();
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const assets: BuildResult["assets"] = [];
  const outputs = targets.map((t) => ({ target: t, outfile: join(outdir, assetName(t)), bunTarget: t.bunTarget }));
  await compileSandboxes(outputs, async (outfile, seconds) => {
    const { target } = outputs.find((o) => o.outfile === outfile)!;
    const file = assetName(target);
    const bytes = statSync(outfile).size;
    assets.push({ target: target.name, file, bytes, sha256: await sha256(outfile), seconds });
    log(`${file.padEnd(36)} ${(bytes / 1e6).toFixed(1).padStart(6)} MB  ${seconds.toFixed(1)} s`);
  });
  await checkHostBinary(outdir, targets, version);
  // The installer is published next to the binaries so .../releases/latest/download/install.sh works.
  if (existsSync(join(ROOT, "install.sh"))) copyFileSync(join(ROOT, "install.sh"), join(outdir, "install.sh"));
  const sums = [...assets].sort((a, b) => a.file.localeCompare(b.file)).map((a) => `${a.sha256}  ${a.file}\n`).join("");
  await Bun.write(join(outdir, "SHA256SUMS"), sums);
  return { outdir, version, assets };
}

/** The binary built for this machine must print package.json's version. */
async function checkHostBinary(outdir: string, targets: ReleaseTarget[], version: string): Promise<void> {
  let host: ReleaseTarget | undefined;
  try {
    host = hostTarget();
  } catch {
    return;
  }
  if (!targets.some((t) => t.name === host!.name)) return;
  const proc = Bun.spawnSync([join(outdir, assetName(host)), "--version"]);
  const printed = proc.stdout.toString().trim();
  if (proc.exitCode !== 0 || printed !== version) {
    throw new Error(`${assetName(host)} --version printed "${printed}" (exit ${proc.exitCode}), expected ${version}`);
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: { only: { type: "string" }, outdir: { type: "string" }, outfile: { type: "string" }, "start-helpers": { type: "boolean" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`usage: bun run scripts/build-binaries.ts [--only host|${TARGETS.map((t) => t.name).join("|")}[,...]] [--outdir dir]\n`);
    process.stdout.write("       bun run scripts/build-binaries.ts --outfile path   (this machine only, no SHA256SUMS)\n");
    process.stdout.write("       bun run scripts/build-binaries.ts --start-helpers  (sandbox-start for each Linux CPU, into dist/)\n");
    process.exit(0);
  }
  /** Runs `work`, then exits: 0, or 1 with its error in one line. */
  const exitAfter = async (work: () => Promise<void>): Promise<never> => {
    try {
      await work();
      process.exit(0);
    } catch (error) {
      process.stderr.write(`build-binaries: ${(error as Error).message}\n`);
      process.exit(1);
    }
  };
  if (values["start-helpers"]) {
    await exitAfter(async () => {
      for (const arch of ["x64", "arm64"] as const) await compileStartHelper(arch, startHelperFile(arch));
    });
  }
  if (values.outfile) await exitAfter(() => compileHostBinary(resolve(values.outfile!)));
  const started = performance.now();
  await exitAfter(async () => {
    const result = await buildRelease({ only: values.only, outdir: values.outdir, log: (line) => process.stderr.write(`${line}\n`) });
    const total = result.assets.reduce((sum, a) => sum + a.bytes, 0);
    process.stderr.write(`sandboxes ${result.version}: ${result.assets.length} binaries, ${(total / 1e6).toFixed(0)} MB, ${((performance.now() - started) / 1000).toFixed(1)} s -> ${result.outdir}\n`);
  });
}
