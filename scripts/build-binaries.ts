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
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
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

/**
 * Flags for every release binary (and what `bun run build` should use for dist/sandboxes).
 * --bytecode: no parsing at start-up. --splitting: each lazily imported module (a command, a
 * provider and its SDK) is its own chunk inside the binary, loaded with its node: built-ins only
 * when first imported; without it the SDKs' code and built-ins are all paid for at start-up.
 * Identifiers are not minified: SDKs and our error handling read class names (error.name,
 * constructor.name), and Bun 1.4's --keep-names does not keep them.
 * No .env or bunfig.toml autoload: a CLI run inside someone's project must not pick those up.
 */
export const COMPILE_FLAGS = [
  "--compile", "--minify-syntax", "--minify-whitespace", "--sourcemap=none",
  "--bytecode", "--format=esm", "--splitting",
  // Libraries check NODE_ENV for their production paths; the same as package.json's build.
  "--define", 'process.env.NODE_ENV="production"',
  "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
];

/** Compiles `entry` with the release flags; bunTarget defaults to this machine. */
export async function compileEntry(entry: string, outfile: string, bunTarget?: string): Promise<void> {
  const args = [process.execPath, "build", ...COMPILE_FLAGS, ...(bunTarget ? [`--target=${bunTarget}`] : []), entry, "--outfile", outfile];
  const proc = Bun.spawn(args, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`bun build ${bunTarget ? `--target=${bunTarget} ` : ""}${entry} failed (exit ${code}):\n${stderr || stdout}`);
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
  for (const t of targets) {
    const file = assetName(t);
    const started = performance.now();
    await compileEntry(join(ROOT, "src/main.ts"), join(outdir, file), t.bunTarget);
    const seconds = (performance.now() - started) / 1000;
    const bytes = statSync(join(outdir, file)).size;
    assets.push({ target: t.name, file, bytes, sha256: await sha256(join(outdir, file)), seconds });
    log(`${file.padEnd(36)} ${(bytes / 1e6).toFixed(1).padStart(6)} MB  ${seconds.toFixed(1)} s`);
  }
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
    options: { only: { type: "string" }, outdir: { type: "string" }, outfile: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`usage: bun run scripts/build-binaries.ts [--only host|${TARGETS.map((t) => t.name).join("|")}[,...]] [--outdir dir]\n`);
    process.stdout.write("       bun run scripts/build-binaries.ts --outfile path   (this machine only, no SHA256SUMS)\n");
    process.exit(0);
  }
  if (values.outfile) {
    try {
      await compileEntry(join(ROOT, "src/main.ts"), resolve(values.outfile));
      process.exit(0);
    } catch (error) {
      process.stderr.write(`build-binaries: ${(error as Error).message}\n`);
      process.exit(1);
    }
  }
  const started = performance.now();
  try {
    const result = await buildRelease({ only: values.only, outdir: values.outdir, log: (line) => process.stderr.write(`${line}\n`) });
    const total = result.assets.reduce((sum, a) => sum + a.bytes, 0);
    process.stderr.write(`sandboxes ${result.version}: ${result.assets.length} binaries, ${(total / 1e6).toFixed(0)} MB, ${((performance.now() - started) / 1000).toFixed(1)} s -> ${result.outdir}\n`);
  } catch (error) {
    process.stderr.write(`build-binaries: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
