/**
 * `npm test`'s preparation (scripts/test-setup.sh, which runs scripts/ci/*.sh), proven without
 * changing this machine: each case builds a machine of its own — a PATH of links to this host's
 * commands with some left out (bubblewrap, tmux, Go, dockerd, a system-wide bun) — plus stand-ins
 * for whatever installs: apt-get and npm record their call and put a stub of the command in place,
 * sudo records and runs its command, and dockerd is test/fakes/setup/engine.ts on a socket in the
 * case's temp dir. Nothing is installed on the host and its dockerd is never asked.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { serveEngine } from "../fakes/setup/engine";

const ROOT = resolve(import.meta.dir, "../..");
const BUN_VERSION: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).devDependencies.bun;
const IMAGES = ["sandboxes-test/busybox", "sandboxes-test/user", "sandboxes-test/node"];
const NOBODY = 65534;
const asNobody = ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", "--"];
const isRoot = process.getuid?.() === 0;
/** Every command the scripts/ci/*.sh check for (`need_commands COMMAND:PACKAGE…`). */
const CHECKED = readdirSync(join(ROOT, "scripts/ci"))
  .flatMap((file) => [...readFileSync(join(ROOT, "scripts/ci", file), "utf8").matchAll(/^need_commands((?:.*\\\n)*.*)$/gm)])
  .flatMap((call) => [...call[1]!.matchAll(/([\w.+-]+):[\w.+-]+/g)].map((pair) => pair[1]!));

interface Machine {
  dir: string;
  socket: string;
  env: Record<string, string>;
  /** The install commands run so far (apt-get, npm, sudo), one line each. */
  calls(): string[];
}

const dirs: string[] = [];
const stops: Array<() => void> = [];
afterAll(() => {
  for (const stop of stops.splice(0)) stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** This host's commands minus `without`, with apt-get, npm (and, when asked, sudo) as recorders. */
function machine(without: string[], options: { sudo?: boolean; owner?: number } = {}): Machine {
  const dir = mkdtempSync(join(tmpdir(), "sandboxes-setup-"));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const bin = join(dir, "bin");
  const fake = join(dir, "fake");
  const log = join(dir, "calls.log");
  const socket = join(dir, "docker.sock");
  mkdirSync(bin);
  mkdirSync(fake);
  mkdirSync(join(dir, "home"));
  writeFileSync(log, "");
  const leftOut = new Set([...without, "sudo", "apt-get", "npm"]);
  for (const from of ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    for (const name of readdirSync(from)) {
      if (!leftOut.has(name) && !existsSync(join(bin, name))) symlinkSync(join(from, name), join(bin, name));
    }
  }
  // What this host keeps outside /usr (rustup under ~/.cargo, say) is installed on this machine too.
  for (const command of CHECKED) {
    if (!leftOut.has(command) && !existsSync(join(bin, command))) writeFileSync(join(bin, command), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  }
  const script = (name: string, body: string) => {
    writeFileSync(join(fake, name), `#!/bin/sh\n${body}`);
    chmodSync(join(fake, name), 0o755);
  };
  const stub = (command: string) => `printf '#!/bin/sh\\nexit 0\\n' > "${bin}/${command}"; chmod 755 "${bin}/${command}"`;
  script(
    "apt-get",
    `echo "apt-get $*" >> '${log}'
[ "$1" = install ] || exit 0
if [ -n "\${FAKE_APT_FAILS:-}" ]; then echo "E: Unable to locate package $FAKE_APT_FAILS" >&2; exit 100; fi
for package; do
  case $package in
    -* | install) ;;
    bubblewrap) ${stub("bwrap")} ;;
    golang-go) ${stub("go")} ;;
    docker.io) printf '#!/bin/sh\\nexec %s %s "$@"\\n' '${process.execPath}' '${join(ROOT, "test/fakes/setup/engine.ts")}' > '${bin}/dockerd'; chmod 755 '${bin}/dockerd' ;;
    *) ${stub("$package")} ;;
  esac
done
`,
  );
  script("npm", `echo "npm $*" >> '${log}'\ncase "$*" in *bun@*) ${stub("bun")} ;; esac\n`);
  if (options.sudo) script("sudo", `echo "sudo $*" >> '${log}'\n[ "$1" = -n ] && shift\nexec "$@"\n`);
  if (options.owner !== undefined) for (const path of [bin, log, join(dir, "home")]) chownSync(path, options.owner, options.owner);
  stops.push(() => {
    // The dockerd that setup started (the stand-in) says where it runs.
    if (existsSync(`${socket}.pid`)) process.kill(Number(readFileSync(`${socket}.pid`, "utf8")), "SIGTERM");
  });
  return {
    dir,
    socket,
    env: {
      PATH: `${fake}:${bin}`,
      HOME: join(dir, "home"),
      LANG: "C.UTF-8",
      SANDBOXES_SETUP_DOCKER_SOCKET: socket,
      DOCKERD_LOG: join(dir, "dockerd.log"),
    },
    calls: () => readFileSync(log, "utf8").split("\n").filter(Boolean),
  };
}

async function run(argv: string[], env: Record<string, string>) {
  const child = Bun.spawn(argv, { cwd: ROOT, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

const lines = (text: string) => text.split("\n").filter(Boolean);

describe("npm test's preparation (scripts/test-setup.sh)", () => {
  test.skipIf(!isRoot)("as root, on a machine without bubblewrap, tmux, Go, dockerd and bun: installs them one line per step, starts dockerd, builds the images; then does nothing", async () => {
    const m = machine(["bwrap", "tmux", "go", "dockerd", "bun"]);
    const first = await run(["sh", "scripts/test-setup.sh"], m.env);
    expect(first).toEqual({
      code: 0,
      stderr: "",
      stdout: [
        `setup: installing bun@${BUN_VERSION} (npm install -g)`,
        "setup: installing docker.io (apt-get)",
        `setup: starting dockerd (log in ${m.dir}/dockerd.log)`,
        ...IMAGES.map((image) => `setup: building the test image ${image} from host binaries`),
        "setup: installing tmux (apt-get)",
        "setup: installing bubblewrap golang-go (apt-get)",
        "",
      ].join("\n"),
    });
    expect(m.calls()).toEqual([
      `npm install -g --silent --no-audit --no-fund bun@${BUN_VERSION}`,
      "apt-get update -qq",
      "apt-get install -y -qq --no-install-recommends docker.io",
      "apt-get update -qq",
      "apt-get install -y -qq --no-install-recommends tmux",
      "apt-get update -qq",
      "apt-get install -y -qq --no-install-recommends bubblewrap golang-go",
    ]);

    const second = await run(["sh", "scripts/test-setup.sh"], m.env);
    expect(second).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(m.calls()).toHaveLength(7);
  }, 180_000);

  test.skipIf(!isRoot)("as root, when apt-get fails: its own output, one line naming the command, and a non-zero exit", async () => {
    const m = machine(["tmux"]);
    const engine = serveEngine(m.socket, new Set(IMAGES.map((image) => `${image}:latest`)));
    stops.push(() => engine.stop(true));
    const result = await run(["sh", "scripts/test-setup.sh"], { ...m.env, FAKE_APT_FAILS: "tmux" });
    expect(result).toEqual({
      code: 100,
      stdout: "setup: installing tmux (apt-get)\n",
      stderr: "E: Unable to locate package tmux\nsetup: failed (100): apt-get install -y -qq --no-install-recommends tmux\n",
    });
  }, 60_000);

  test.skipIf(!isRoot)("as a user without sudo: lists what is missing and the one command that installs it, exits 1, installs nothing", async () => {
    const m = machine(["bwrap", "tmux", "go", "dockerd", "bun"]);
    const result = await run([...asNobody, "sh", "scripts/test-setup.sh"], m.env);
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr: [
        "npm test needs these on this machine, and installing them needs root:",
        `  - bun@${BUN_VERSION} on the system PATH (npm install -g)`,
        "  - apt package docker.io",
        `  - dockerd answering on ${m.socket} (not running, or not open to this user)`,
        "  - apt package tmux",
        "  - apt package bubblewrap",
        "  - apt package golang-go",
        "Install them with: sudo sh scripts/ci/setup.sh   (then run npm test again)",
        "Tests that need none of them run without setup, e.g. bun test test/unit",
        "",
      ].join("\n"),
    });
    expect(m.calls()).toEqual([]);
  }, 60_000);

  test.skipIf(!isRoot)("`npm test` as a user without sudo stops before building or running any test", async () => {
    const m = machine(["tmux", "dockerd"], { owner: NOBODY });
    const binary = join(ROOT, "dist", "sandboxes");
    const builtAt = existsSync(binary) ? statSync(binary).mtimeMs : 0;
    // The trailing path keeps any run that got past the preparation down to one small file.
    const result = await run([...asNobody, Bun.which("npm")!, "test", "--", "test/unit/argv.test.ts"], m.env);
    expect(result.code).not.toBe(0);
    expect(lines(result.stderr)).toContain("  - apt package tmux");
    expect(lines(result.stderr)).toContain("Install them with: sudo sh scripts/ci/setup.sh   (then run npm test again)");
    expect(`${result.stdout}${result.stderr}`).not.toContain("bun test v");
    expect(existsSync(binary) ? statSync(binary).mtimeMs : 0).toBe(builtAt);
    expect(m.calls()).toEqual([]);
  }, 60_000);

  test.skipIf(!isRoot)("as a user with passwordless sudo: installs through `sudo -n`", async () => {
    const m = machine(["tmux", "bun"], { sudo: true, owner: NOBODY });
    // dockerd is present and answers, with the images: only tmux and bun are missing.
    const engine = serveEngine(m.socket, new Set(IMAGES.map((image) => `${image}:latest`)));
    stops.push(() => engine.stop(true));
    chmodSync(m.socket, 0o777);
    const result = await run([...asNobody, "sh", "scripts/test-setup.sh"], m.env);
    expect(result).toEqual({
      code: 0,
      stderr: "",
      stdout: `setup: installing bun@${BUN_VERSION} (npm install -g)\nsetup: installing tmux (apt-get)\n`,
    });
    expect(m.calls()).toEqual([
      "sudo -n true",
      `sudo -n env PATH=${m.env.PATH} sh scripts/ci/setup.sh`,
      `npm install -g --silent --no-audit --no-fund bun@${BUN_VERSION}`,
      "apt-get update -qq",
      "apt-get install -y -qq --no-install-recommends tmux",
    ]);
  }, 60_000);
});

describe("a test file run alone on a machine that lacks what it needs", () => {
  const bunTest = (file: string, env: Record<string, string>) => run([process.execPath, "test", file], { ...(process.env as Record<string, string>), ...env });

  test("the docker conformance suite without an engine fails in one line saying how to start dockerd", async () => {
    const result = await bunTest("test/conformance/docker.test.ts", { DOCKER_HOST: "unix:///nonexistent/docker.sock" });
    const line = "dockerd is not running (nothing answers on /nonexistent/docker.sock): start it with sudo sh scripts/ci/docker.sh (npm test runs it for you)";
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toContain(line);
    expect(lines(result.stderr)).toContain(" 1 fail");
    expect(result.stderr).not.toMatch(/^\s+at /m);
  }, 60_000);

  test("the terminal tests without tmux fail in one line naming it", async () => {
    const m = machine(["tmux"]);
    const result = await bunTest("test/e2e/confirm.test.ts", { PATH: m.env.PATH! });
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toContain("tmux is not installed: run sudo sh scripts/ci/setup.sh (npm test runs it for you)");
    expect(lines(result.stderr)).toContain(" 1 fail");
    expect(result.stderr).not.toMatch(/^\s+at /m);
  }, 60_000);
});
