/**
 * The release: every cross-compiled binary, SHA256SUMS, and install.sh against a local HTTP
 * server on 127.0.0.1 serving dist/release/ (as GitHub's release downloads would).
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { assetName, buildRelease, hostTarget, startHelperFile, TARGETS, type BuildResult } from "../../scripts/build-binaries";
import { PACKAGE_VERSION, ROOT, run, tempHome, which } from "./_release-helpers";

// Spawns binaries, shells and servers: independent of whichever bunfig.toml is in effect.
setDefaultTimeout(60_000);

const INSTALL_SH = join(ROOT, "install.sh");
let release: BuildResult;
let server: ReturnType<typeof Bun.serve>;
const requests: string[] = [];
const homes: ReturnType<typeof tempHome>[] = [];

/** /latest/* is the release as built; /tampered/* has every checksum altered; anything else is 404. */
function serveRelease(dir: string) {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const path = new URL(request.url).pathname;
      requests.push(path);
      const [, channel, file] = path.split("/");
      if (!file || file.includes("..") || !existsSync(join(dir, file))) return new Response("not found", { status: 404 });
      if (channel === "latest") return new Response(Bun.file(join(dir, file)));
      if (channel === "tampered") {
        if (file !== "SHA256SUMS") return new Response(Bun.file(join(dir, file)));
        const sums = readFileSync(join(dir, file), "utf8").replace(/^(.)/gm, (c) => (c === "0" ? "1" : "0"));
        return new Response(sums);
      }
      return new Response("not found", { status: 404 });
    },
  });
}

beforeAll(async () => {
  release = await buildRelease();
  server = serveRelease(release.outdir);
}, 300_000);

afterAll(() => server?.stop(true));
afterEach(() => {
  for (const home of homes.splice(0)) home.remove();
});

function installEnv(extra: Record<string, string> = {}): { home: string; env: Record<string, string> } {
  const home = tempHome();
  homes.push(home);
  return { home: home.home, env: { ...home.env, SHELL: "/bin/bash", SANDBOXES_DOWNLOAD_BASE: `${server.url}latest`, ...extra } };
}

const install = (env: Record<string, string>, ...args: string[]) => run(["sh", INSTALL_SH, ...args], { env });
const sha256 = (path: string) => new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");

describe("scripts/build-binaries.ts", () => {
  test("writes one binary per target and a SHA256SUMS that matches them", () => {
    const expected = TARGETS.map(assetName).sort();
    expect(expected).toContain("sandboxes-linux-x64-baseline");
    expect(expected).toContain("sandboxes-windows-x64.exe");
    const files = readdirSync(release.outdir).filter((f) => f.startsWith("sandboxes-")).sort();
    expect(files).toEqual(expected);
    const lines = readFileSync(join(release.outdir, "SHA256SUMS"), "utf8").trim().split("\n");
    expect(lines.map((l) => l.split("  ")[1]).sort()).toEqual(expected);
    for (const line of lines) {
      const [hash, file] = line.split("  ");
      expect(sha256(join(release.outdir, file!))).toBe(hash!);
    }
    expect(release.version).toBe(PACKAGE_VERSION);
  });

  test("each binary is an executable for its OS and CPU (ELF / Mach-O / PE headers, musl loader)", () => {
    for (const t of TARGETS) {
      const bytes = readFileSync(join(release.outdir, assetName(t)));
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (t.os === "linux") {
        expect(bytes.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
        expect(view.getUint16(18, true)).toBe(t.arch === "x64" ? 0x3e : 0xb7);
        const head = bytes.subarray(0, 65536).toString("latin1");
        expect(head.includes("ld-musl")).toBe(t.name.includes("musl"));
      } else if (t.os === "darwin") {
        expect(view.getUint32(0, true)).toBe(0xfeedfacf);
        expect(view.getUint32(4, true)).toBe(t.arch === "x64" ? 0x01000007 : 0x0100000c);
      } else {
        expect(bytes.subarray(0, 2).toString("latin1")).toBe("MZ");
        const pe = view.getUint32(0x3c, true);
        expect(bytes.subarray(pe, pe + 4).toString("latin1")).toBe("PE\0\0");
        expect(view.getUint16(pe + 4, true)).toBe(0x8664);
      }
    }
  });

  // Built static for each Linux CPU (compileStartHelper), the first process of a one-shot local
  // sandbox: a Linux binary without its own would start sandboxes the slower way.
  test("each Linux binary carries sandbox-start for its own CPU, static; no other binary carries one", () => {
    const helpers = Object.fromEntries((["x64", "arm64"] as const).map((arch) => [arch, readFileSync(startHelperFile(arch))]));
    for (const [arch, helper] of Object.entries(helpers)) {
      const view = new DataView(helper.buffer, helper.byteOffset, helper.byteLength);
      expect(helper.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
      expect(view.getUint16(18, true)).toBe(arch === "x64" ? 0x3e : 0xb7);
      // No program interpreter (PT_INTERP, type 3): nothing to load as it starts.
      const [phoff, phentsize, phnum] = [Number(view.getBigUint64(32, true)), view.getUint16(54, true), view.getUint16(56, true)];
      const types = Array.from({ length: phnum }, (_, i) => view.getUint32(phoff + i * phentsize, true));
      expect(types).not.toContain(3);
    }
    for (const t of TARGETS) {
      const bytes = readFileSync(join(release.outdir, assetName(t)));
      const carried = Object.entries(helpers).filter(([, helper]) => bytes.includes(helper)).map(([arch]) => arch);
      expect(carried).toEqual(t.os === "linux" ? [t.arch] : []);
    }
  });

  test("the host binary prints package.json's version", async () => {
    const result = await run([join(release.outdir, assetName(hostTarget())), "--version"], { env: tempHomeEnv() });
    expect(result).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: "" });
  });

  test("--only builds just the named targets, and rejects unknown ones", async () => {
    const outdir = mkdtempSync(join(tmpdir(), "sandboxes-only-"));
    try {
      const ok = await run([process.execPath, "run", "scripts/build-binaries.ts", "--only", "host", "--outdir", outdir], { env: { ...process.env } as Record<string, string> });
      expect(ok.code).toBe(0);
      expect(readdirSync(outdir).sort()).toEqual(["SHA256SUMS", assetName(hostTarget()), "install.sh"].sort());
      const bad = await run([process.execPath, "run", "scripts/build-binaries.ts", "--only", "linux-mips", "--outdir", outdir], { env: { ...process.env } as Record<string, string> });
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('unknown target "linux-mips"; known: host, linux-x64,');
    } finally {
      rmSync(outdir, { recursive: true, force: true });
    }
  });
});

function tempHomeEnv(): Record<string, string> {
  const home = tempHome();
  homes.push(home);
  return home.env;
}

describe("install.sh", () => {
  test("installs the host binary into $HOME/.sandboxes/bin, which then runs", async () => {
    const { home, env } = installEnv();
    const result = await install(env);
    expect(result.stderr).toContain(`Installed sandboxes ${PACKAGE_VERSION} to ${home}/.sandboxes/bin/sandboxes`);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
    const installed = join(home, ".sandboxes/bin/sandboxes");
    const version = await run([installed, "--version"], { env });
    expect(version).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: "" });
    // Not a TTY: PATH advice is printed, no shell file is touched.
    expect(result.stderr).toContain(`export PATH="${home}/.sandboxes/bin:$PATH"`);
    expect(existsSync(join(home, ".bashrc"))).toBe(false);
    expect(readdirSync(join(home, ".sandboxes/bin"))).toEqual(["sandboxes"]);
    if (process.platform === "linux") expect(result.stderr).toMatch(/bubblewrap (found|not found)/);
  });

  test("on a glibc machine that also has musl's loader (Debian's musl-tools, for Rust's musl target), it installs the glibc build, which runs", async () => {
    // scripts/ci/release.sh installs musl-tools: both loaders are here.
    expect(hostTarget().name).not.toContain("musl");
    expect(existsSync(`/lib/ld-musl-${process.arch === "arm64" ? "aarch64" : "x86_64"}.so.1`)).toBe(true);
    const { home, env } = installEnv();
    const result = await install(env);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`Downloading sandboxes-${hostTarget().name}(-baseline)? from`));
    const version = await run([join(home, ".sandboxes/bin/sandboxes"), "--version"], { env });
    expect(version).toEqual({ code: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: "" });
  });

  test("SANDBOXES_INSTALL chooses the prefix", async () => {
    const { home, env } = installEnv();
    const prefix = join(home, "opt/sb");
    const result = await install({ ...env, SANDBOXES_INSTALL: prefix });
    expect(result.code).toBe(0);
    expect(existsSync(join(prefix, "bin/sandboxes"))).toBe(true);
    expect(existsSync(join(home, ".sandboxes"))).toBe(false);
  });

  test("a tampered SHA256SUMS aborts and installs nothing", async () => {
    const { home, env } = installEnv({ SANDBOXES_DOWNLOAD_BASE: `${server.url}tampered` });
    const result = await install(env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("install.sh: error: checksum mismatch for sandboxes-");
    expect(result.stderr).toContain("refusing to install");
    expect(existsSync(join(home, ".sandboxes"))).toBe(false);
  });

  test("a missing asset fails loudly and installs nothing", async () => {
    const { home, env } = installEnv({ SANDBOXES_DOWNLOAD_BASE: `${server.url}nowhere` });
    const result = await install(env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/install\.sh: error: download failed: http:\/\/127\.0\.0\.1:\d+\/nowhere\/sandboxes-/);
    expect(existsSync(join(home, ".sandboxes"))).toBe(false);
  });

  test("an unknown architecture or OS fails clearly before downloading anything", async () => {
    const { home, env } = installEnv();
    const before = requests.length;
    const arch = await install({ ...env, SANDBOXES_ARCH: "riscv64" });
    expect(arch.code).toBe(1);
    expect(arch.stderr).toBe("install.sh: error: unsupported architecture: riscv64 (binaries exist for x64 and arm64 only)\n");
    const os = await install({ ...env, SANDBOXES_OS: "SunOS" });
    expect(os.code).toBe(1);
    expect(os.stderr).toStartWith("install.sh: error: unsupported operating system: SunOS");
    expect(requests.length).toBe(before);
    expect(existsSync(join(home, ".sandboxes"))).toBe(false);
  });

  test("maps detected platforms to assets (macOS arm64, Windows x64, baseline, musl)", async () => {
    const cases: [Record<string, string>, string, string][] = [
      [{ SANDBOXES_OS: "Darwin", SANDBOXES_ARCH: "arm64" }, "sandboxes-darwin-arm64", "sandboxes"],
      [{ SANDBOXES_OS: "Darwin", SANDBOXES_ARCH: "x86_64" }, "sandboxes-darwin-x64", "sandboxes"],
      [{ SANDBOXES_OS: "MINGW64_NT-10.0", SANDBOXES_ARCH: "x86_64" }, "sandboxes-windows-x64.exe", "sandboxes.exe"],
      [{ SANDBOXES_OS: "Linux", SANDBOXES_ARCH: "aarch64", SANDBOXES_VARIANT: "musl" }, "sandboxes-linux-arm64-musl", "sandboxes"],
      [{ SANDBOXES_OS: "Linux", SANDBOXES_ARCH: "amd64", SANDBOXES_VARIANT: "baseline" }, "sandboxes-linux-x64-baseline", "sandboxes"],
    ];
    for (const [overrides, asset, exe] of cases) {
      const { home, env } = installEnv(overrides);
      const result = await install(env);
      expect(result.stderr).toContain(`Downloading ${asset} from`);
      expect(result.code).toBe(0);
      expect(sha256(join(home, ".sandboxes/bin", exe))).toBe(sha256(join(release.outdir, asset)));
    }
    const windowsArm = await install(installEnv({ SANDBOXES_OS: "MINGW64_NT-10.0", SANDBOXES_ARCH: "aarch64" }).env);
    expect(windowsArm.code).toBe(1);
    expect(windowsArm.stderr).toContain("no Windows arm64 binary yet");
  });

  test("a version argument pins the release and must match what is served", async () => {
    const { home, env } = installEnv();
    const pinned = await install(env, `v${PACKAGE_VERSION}`);
    expect(pinned.code).toBe(0);
    expect(existsSync(join(home, ".sandboxes/bin/sandboxes"))).toBe(true);
    const other = installEnv();
    const wrong = await install(other.env, "9.9.9");
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`install.sh: error: asked for 9.9.9 but ${server.url}latest serves ${PACKAGE_VERSION}: nothing was changed`);
    expect(existsSync(join(other.home, ".sandboxes"))).toBe(false);
  });

  test("on a TTY it adds PATH to the shell's rc file once, never under CI; --uninstall undoes both", async () => {
    const { home, env } = installEnv();
    const viaTty = (args: string, extra: Record<string, string> = {}) =>
      run(["script", "-qec", `sh ${INSTALL_SH} ${args}`, "/dev/null"], { env: { ...env, ...extra } });
    writeFileSync(join(home, ".bashrc"), "alias ll='ls -l'\n");
    const underCi = await viaTty("", { CI: "true" });
    expect(underCi.code).toBe(0);
    expect(readFileSync(join(home, ".bashrc"), "utf8")).toBe("alias ll='ls -l'\n");
    for (let i = 0; i < 2; i++) expect((await viaTty("")).code).toBe(0);
    expect(readFileSync(join(home, ".bashrc"), "utf8")).toBe(
      `alias ll='ls -l'\nexport PATH="${home}/.sandboxes/bin:$PATH" # added by the sandboxes installer\n`,
    );
    const removed = await install(env, "--uninstall");
    expect(removed.code).toBe(0);
    expect(removed.stderr).toContain(`removed ${home}/.sandboxes/bin/sandboxes`);
    expect(readFileSync(join(home, ".bashrc"), "utf8")).toBe("alias ll='ls -l'\n");
    expect(existsSync(join(home, ".sandboxes"))).toBe(false);
    const again = await install(env, "--uninstall");
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("sandboxes is not installed");
  });

  test("a truncated download runs nothing", async () => {
    const { home, env } = installEnv();
    const script = readFileSync(INSTALL_SH, "utf8");
    const before = requests.length;
    const truncated = script.slice(0, script.lastIndexOf("install_sandboxes"));
    const result = await run(["sh"], { env, stdin: truncated });
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(requests.length).toBe(before);
    expect(existsSync(join(home, ".sandboxes"))).toBe(false);
    expect(script.trimEnd().split("\n").at(-1)).toBe('install_sandboxes "$@"');
  });

  test("is POSIX sh: dash parses it and shellcheck -s sh finds nothing", async () => {
    const env = tempHomeEnv();
    expect(await run(["dash", "-n", INSTALL_SH], { env })).toEqual({ code: 0, stdout: "", stderr: "" });
    const check = await run(["shellcheck", "-s", "sh", INSTALL_SH], { env });
    expect(check.stdout).toBe("");
    expect(check.code).toBe(0);
  });
});

test("CI has the tools these tests need (scripts/ci/release.sh)", () => {
  for (const tool of ["sh", "dash", "curl", "script", "shellcheck"]) expect({ tool, path: which(tool) }).toEqual({ tool, path: expect.any(String) });
});
