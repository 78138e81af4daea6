import { describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json";
import type { CommandName } from "../../src/cli/registry";
import { providerNames } from "../../src/providers/catalog";
import { BINARY, cli, freshEnv, NOBODY, nobodyMachine, spawnCli } from "../helpers";

/** Every command has an e2e entry: a new command without one fails the type check. */
const COMMAND_TESTS: Record<CommandName, () => Promise<void>> = {
  run: async () => {
    const { env } = freshEnv();
    expect((await cli(["run", "echo hi"], { env })).stdout).toBe("hi\n");
  },
  exec: async () => {
    const { env } = freshEnv();
    const r = await cli(["exec", "missing-box", "true"], { env });
    expect(r.code).toBe(125);
    expect(r.stderr).toBe('sandboxes: no sandbox "missing-box" on local: see `sandboxes list`\n');
  },
  shell: async () => {
    const { env } = freshEnv();
    const r = await cli(["shell", "--help"], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("shell");
  },
  claude: async () => {
    const { env } = freshEnv();
    const r = await cli(["claude", "--help"], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Claude");
  },
  list: async () => {
    const { env } = freshEnv();
    const r = await cli(["list", "--json"], { env });
    expect(JSON.parse(r.stdout)).toEqual({ sandboxes: [], warnings: [] });
  },
  destroy: async () => {
    const { env } = freshEnv();
    await cli(["run", "--keep", "-l", "batch=1", "true"], { env });
    await cli(["run", "--keep", "-l", "batch=1", "true"], { env });
    await cli(["run", "--keep", "-l", "batch=2", "true"], { env });
    const refused = await cli(["destroy", "--all", "-l", "batch=1"], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("add --yes");
    const done = await cli(["destroy", "--all", "-l", "batch=1", "--yes", "--json"], { env });
    expect(JSON.parse(done.stdout).destroyed.length).toBe(2);
    const left = JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes;
    expect(left.map((s: { labels: Record<string, string> }) => s.labels.batch)).toEqual(["2"]);
    const missing = await cli(["destroy", "nope"], { env });
    expect(missing).toMatchObject({ code: 0, stdout: "" });
    expect(missing.stderr.trim()).toBe("WARN  nope: no such sandbox (already destroyed?), nothing to destroy");
    expect(JSON.parse((await cli(["destroy", "nope", "--json"], { env })).stdout)).toEqual({ destroyed: [], failed: [], missing: ["nope"] });
    expect((await cli(["destroy"], { env })).code).toBe(2);
    // Kept sandboxes hold host resources (a local one, its cgroup): none outlives the test.
    expect((await cli(["destroy", "--all", "--yes"], { env })).code).toBe(0);
  },
  cp: async () => {
    const { env, home } = freshEnv();
    const id = /kept sandbox (\S+)/.exec((await cli(["run", "--keep", "-n", "files", "true"], { env })).stderr)![1]!;
    const bytes = new Uint8Array(100_000).map((_, i) => (i * 31) % 256);
    writeFileSync(join(home, "blob.bin"), bytes);
    mkdirSync(join(home, "tree/inner"), { recursive: true });
    writeFileSync(join(home, "tree/inner/a.sh"), "#!/bin/sh\necho run-me\n", { mode: 0o755 });

    expect((await cli(["cp", join(home, "blob.bin"), "files:/tmp/blob.bin"], { env })).code).toBe(0);
    expect((await cli(["exec", "files", "wc -c < /tmp/blob.bin"], { env })).stdout.trim()).toBe("100000");
    expect((await cli(["cp", join(home, "blob.bin"), "files:/tmp/new.name&1.bin"], { env })).code).toBe(0);
    expect((await cli(["exec", "files", "ls /tmp"], { env })).stdout).toContain("new.name&1.bin\n");
    expect((await cli(["cp", "files:/tmp/blob.bin", join(home, "back.bin")], { env })).code).toBe(0);
    expect(new Uint8Array(await Bun.file(join(home, "back.bin")).arrayBuffer())).toEqual(bytes);

    // cp -r semantics: into an existing directory keeps the name; to a new path renames.
    await cli(["exec", "files", "mkdir -p /tmp/dest"], { env });
    expect((await cli(["cp", join(home, "tree"), `${id}:/tmp/dest`], { env })).code).toBe(0);
    expect((await cli(["exec", "files", "/tmp/dest/tree/inner/a.sh"], { env })).stdout).toBe("run-me\n");
    expect((await cli(["cp", join(home, "tree"), "files:/tmp/renamed"], { env })).code).toBe(0);
    expect((await cli(["exec", "files", "ls /tmp/renamed"], { env })).stdout).toBe("inner\n");
    mkdirSync(join(home, "down"));
    expect((await cli(["cp", "files:/tmp/renamed", join(home, "down")], { env })).code).toBe(0);
    expect(await Bun.file(join(home, "down/renamed/inner/a.sh")).text()).toBe("#!/bin/sh\necho run-me\n");

    const bad = await cli(["cp", "a", "b"], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("write one side as ID:/path");
    const missing = await cli(["cp", "files:/tmp/nothing-here", join(home, "x")], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("/tmp/nothing-here");
    await cli(["destroy", id], { env });
  },
  providers: async () => {
    const { env } = freshEnv();
    const r = await cli(["providers", "--json"], { env });
    const doc = JSON.parse(r.stdout);
    expect(doc.default).toEqual({ name: "local", reason: "no cloud credentials found; local needs none" });
    const local = doc.providers.find((p: { name: string }) => p.name === "local");
    expect(local).toMatchObject({ configured: true, source: "built in", default: true });
    expect(local.details).toMatch(/isolation: (bubblewrap|util-linux)/);
    const viaEnv = JSON.parse((await cli(["providers", "--json"], { env: { ...env, SANDBOXES_PROVIDER: "local" } })).stdout);
    expect(viaEnv.default.reason).toBe("SANDBOXES_PROVIDER");
  },
  test: async () => {
    const { env } = freshEnv();
    const r = await cli(["test", "-p", "local"], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^PROVIDER\tRESULT/);
    expect(r.stdout).toMatch(/\nlocal\tok\t/);
  },
  mcp: async () => {
    const { env } = freshEnv();
    const r = await cli(["mcp", "config", "json"], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).mcpServers.sandboxes.args).toEqual(["mcp"]);
  },
  help: async () => {
    const { env } = freshEnv();
    const r = await cli(["help", "exit-codes"], { env });
    expect(r.code).toBe(0);
    for (const code of ["124", "125", "130", "143", "128+N"]) expect(r.stdout).toContain(code);
  },
  completion: async () => {
    const { env } = freshEnv();
    const r = await cli(["completion", "bash"], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("-F _sandboxes sandboxes");
    expect((await cli(["completion", "tcsh"], { env })).code).toBe(2);
  },
};

describe("every command, through the compiled binary", () => {
  for (const [name, run] of Object.entries(COMMAND_TESTS)) test(name, run, 60_000);
});

describe("help and version", () => {
  test("--version prints package.json's version", async () => {
    const r = await cli(["--version"], freshEnv());
    expect(r.stdout).toBe(`${pkg.version}\n`);
  });
  test("--help lists every command, including shell and claude", async () => {
    const r = await cli(["--help"], freshEnv());
    for (const name of Object.keys(COMMAND_TESTS)) expect(r.stdout).toContain(`  ${name} `);
  });
  test("each command has --help", async () => {
    for (const name of Object.keys(COMMAND_TESTS)) {
      const r = await cli([name, "--help"], freshEnv());
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Usage: sandboxes");
    }
  });
});

describe("documents on stdout (tables, JSON, help) where stdout is unusual", () => {
  const shell = async (script: string) => {
    const { env } = freshEnv();
    const child = Bun.spawn(["bash", "-c", script, "sh", BINARY], { env, stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { stdout, stderr };
  };

  test("a reader that is gone: exit 141 and no message, like any Unix program", async () => {
    const r = await shell(`"$1" providers | true; echo "status \${PIPESTATUS[0]}"`);
    expect(r.stdout).toBe("status 141\n");
    expect(r.stderr).toBe("");
  });

  test("a full disk is one line on stderr and exit 1, also with --json", async () => {
    const line = "sandboxes: cannot write to standard output: ENOSPC: check where standard output goes (a full disk, a closed descriptor)\n";
    for (const args of ["providers", "providers --json", "help exit-codes"]) {
      const r = await shell(`"$1" ${args} >/dev/full; echo "status $?"`);
      expect(r.stdout).toBe("status 1\n");
      expect(r.stderr).toBe(line);
    }
  });

  test("a large JSON document reaches a slow reader whole", async () => {
    const r = await shell(`"$1" run --json 'head -c 3000000 /dev/zero | tr "\\0" a' | (sleep 1; cat); echo "status \${PIPESTATUS[0]}" >&2`);
    const document = JSON.parse(r.stdout);
    expect(document.stdout).toBe("a".repeat(3_000_000));
    expect(document.exit_code).toBe(0);
    expect(r.stderr).toBe("status 0\n");
  });
});

describe("bad input: one clear line, documented exit code, no stack", () => {
  const cases: Array<[string, string[], number, string]> = [
    ["unknown provider", ["run", "-p", "lcoal", "true"], 125, `sandboxes: unknown provider "lcoal" (did you mean "local"?); known providers: ${providerNames().join(", ")}\n`],
    ["file not found", ["run", "-f", "/nonexistent/main.py"], 125, "sandboxes: file not found: /nonexistent/main.py: check the path given to --file\n"],
    ["unknown language", ["run", "--lang", "cobol", "-f", "/etc/hostname"], 125, 'sandboxes: unknown language "cobol"; known: python, javascript, typescript, go, rust, bash, ruby, java, c, cpp, php, perl, lua, r\n'],
    ["empty -e key", ["run", "-e", "=v", "true"], 125, "sandboxes: -e: empty variable name: write -e KEY=VALUE\n"],
    ["non-numeric timeout", ["run", "-t", "soon", "true"], 125, 'sandboxes: --timeout must be a number of seconds (e.g. 30, 1.5, 2m, 3d), got "soon"\n'],
    ["unknown flag", ["run", "--kep", "true"], 125, 'sandboxes: unknown flag --kep for "run"; did you mean --keep? (see sandboxes run --help)\n'],
    ["unknown flag, plain command", ["list", "--jsn"], 2, 'sandboxes: unknown flag --jsn for "list"; did you mean --json? (see sandboxes list --help)\n'],
    ["unknown command", ["rn"], 2, 'sandboxes: unknown command "rn"; did you mean "run"? (see sandboxes --help)\n'],
    ["unknown sandbox", ["exec", "local-000000000000", "true"], 125, 'sandboxes: no sandbox "local-000000000000" on local: see `sandboxes list`\n'],
    ["nothing to run", ["run"], 125, "sandboxes: code on stdin needs --lang (e.g. `cat main.go | sandboxes run --lang go`)\n"],
    ["empty code on stdin", ["run", "--lang", "go"], 125, "sandboxes: no code on stdin: pipe a program in, or pass a COMMAND or --file\n"],
    ["missing exec command", ["exec", "box"], 125, "sandboxes: missing COMMAND: sandboxes exec ID|NAME COMMAND\n"],
    ["flag without value", ["run", "true", "-t"], 125, "sandboxes: --timeout needs a value (see sandboxes run --help)\n"],
    ["flag-like value", ["run", "-t", "-5", "true"], 125, 'sandboxes: --timeout needs a value, not the flag-like -5: to pass a value that starts with "-", write --timeout=-5\n'],
    ["single-value flag twice", ["run", "-t", "5", "--timeout", "10", "true"], 125, "sandboxes: --timeout given more than once (it takes one value)\n"],
    ["value for a switch", ["list", "--json=yes"], 2, "sandboxes: --json is a switch and takes no value\n"],
    ["single dash before a long flag", ["list", "-json"], 2, 'sandboxes: unknown flag -j for "list"; did you mean --json? (see sandboxes list --help)\n'],
    ["unknown short flag in a group", ["destroy", "-yz", "--all"], 2, "sandboxes: unknown flag -z for \"destroy\" (see sandboxes destroy --help)\n"],
    ...(["a\nb", "\u001b[2Jbox", "my box", "-box", "x".repeat(129)].map((name): [string, string[], number, string] => [
      `sandbox name ${JSON.stringify(name.slice(0, 12))}`,
      ["run", "--keep", `--name=${name}`, "true"],
      125,
      `sandboxes: sandbox name ${JSON.stringify(name)} is not valid: use letters, digits, "_", "." and "-", starting with a letter or digit (at most 128 characters)\n`,
    ])),
  ];
  for (const [title, args, code, stderr] of cases) {
    test(title, async () => {
      const r = await cli(args, { ...freshEnv(), stdin: "" });
      expect(r.stderr).toBe(stderr);
      expect(r.code).toBe(code);
      expect(r.stdout).toBe("");
    });
  }

  test("unknown extension suggests --lang and lists languages", async () => {
    const { env, home } = freshEnv();
    writeFileSync(join(home, "prog.xyz"), "x");
    const r = await cli(["run", "-f", join(home, "prog.xyz")], { env });
    expect(r.code).toBe(125);
    expect(r.stderr).toBe(`sandboxes: cannot tell the language of ${join(home, "prog.xyz")} (extension .xyz): pass --lang with one of python, javascript, typescript, go, rust, bash, ruby, java, c, cpp, php, perl, lua, r\n`);
  });

  test("a provider without credentials names the variable", async () => {
    const { env, home } = freshEnv();
    writeFileSync(join(home, ".config/sandboxes.toml"), "");
    mkdirSync(join(home, ".config/sandboxes"), { recursive: true });
    writeFileSync(join(home, ".config/sandboxes/config.toml"), 'default_provider = "local"\n[providers.local]\n');
    const r = await cli(["providers", "--json"], { env });
    expect(JSON.parse(r.stdout).default.reason).toContain("default_provider in");
  });

  test("a broken config file is one clear line", async () => {
    const { env, home } = freshEnv();
    mkdirSync(join(home, ".config/sandboxes"), { recursive: true });
    writeFileSync(join(home, ".config/sandboxes/config.toml"), "default_provider = \n");
    const r = await cli(["list"], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith(`sandboxes: cannot parse ${join(home, ".config/sandboxes/config.toml")}`);
    expect(r.stderr.trim().split("\n").length).toBe(1);
  });
});

// Code is held in memory and written into the sandbox whole: unbounded, --file /dev/zero or
// `< /dev/zero` read until the host ran out of memory ("internal error: ENOMEM", with a 4 GB
// ulimit; without one, the machine's memory).
describe("code larger than 64 MiB, an env file larger than 1 MiB", () => {
  const tooLarge = (what: string) => `sandboxes: ${what} is larger than 64 MiB, the most run takes as a program: put large files in the sandbox with --upload and run a smaller program\n`;
  test("from --file (a device, a regular file) or stdin is one line and exit 125, before any sandbox; a pipe's code runs", async () => {
    const { env, home } = freshEnv();
    const device = await cli(["run", "--lang", "bash", "--file", "/dev/zero"], { env });
    expect({ code: device.code, stderr: device.stderr, stdout: device.stdout }).toEqual({ code: 125, stderr: tooLarge("/dev/zero"), stdout: "" });
    const big = join(home, "big.sh");
    writeFileSync(big, "");
    truncateSync(big, 64 * 1024 * 1024 + 1);
    expect((await cli(["run", "--file", big], { env })).stderr).toBe(tooLarge(big));
    const child = Bun.spawn([BINARY, "run", "--lang", "bash"], { env, stdin: Bun.file("/dev/zero"), stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    expect({ code, stderr, stdout }).toEqual({ code: 125, stderr: tooLarge("the code on stdin"), stdout: "" });
    // A FIFO, as `--file <(…)` gives: read to its end.
    const fifo = join(home, "fifo");
    Bun.spawnSync(["mkfifo", fifo]);
    const writer = Bun.spawn(["sh", "-c", 'printf "echo from a pipe\n" > "$1"', "sh", fifo]);
    expect(await cli(["run", "--lang", "bash", "--file", fifo], { env })).toMatchObject({ code: 0, stdout: "from a pipe\n" });
    await writer.exited;
    expect(JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes).toEqual([]);
  }, 30_000);

  test("--env-file: a device or a file over 1 MiB is one line and exit 125, before any sandbox; a pipe's is read", async () => {
    const { env, home } = freshEnv();
    const tooLarge = (what: string) => `sandboxes: ${what} is larger than 1 MiB, the most --env-file takes: an environment that large would not reach a program anyway: pass files with --upload\n`;
    expect(await cli(["run", "--env-file", "/dev/zero", "echo ran"], { env })).toMatchObject({ code: 125, stdout: "", stderr: tooLarge("/dev/zero") });
    const big = join(home, "big.env");
    writeFileSync(big, `A=${"x".repeat(1024 * 1024)}\n`);
    expect(await cli(["run", "--env-file", big, "echo ran"], { env })).toMatchObject({ code: 125, stdout: "", stderr: tooLarge(big) });
    const fifo = join(home, "env-fifo");
    Bun.spawnSync(["mkfifo", fifo]);
    const writer = Bun.spawn(["sh", "-c", 'printf "A=from a pipe\n" > "$1"', "sh", fifo]);
    expect(await cli(["run", "--env-file", fifo, 'echo "$A"'], { env })).toMatchObject({ code: 0, stdout: "from a pipe\n" });
    await writer.exited;
    expect(JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes).toEqual([]);
  }, 30_000);
});

// The hint for a missing -w directory is a command to paste into a shell: its directory is quoted
// for that shell and again for the sandbox's. Quoted once, a directory named `$(…)` ran on the
// host when pasted.
describe("the hint for a missing working directory", () => {
  test("pasted into a shell, makes that directory and runs nothing else, here or there", async () => {
    const { env, home } = freshEnv();
    const marker = join(home, "pasted-ran");
    const dir = `/tmp/a b/$(touch ${marker})'x`;
    expect((await cli(["run", "--keep", "-n", "wd-hint", "true"], { env })).code).toBe(0);
    try {
      const missing = await cli(["exec", "-w", dir, "wd-hint", "pwd"], { env });
      expect(missing.code).toBe(125);
      const hint = /create it with `(sandboxes exec .*)`, or choose another -w$/.exec(missing.stderr.trim())?.[1];
      expect(hint).toBeDefined();
      const pasted = Bun.spawnSync(["sh", "-c", hint!.replace(/^sandboxes /, `${BINARY} `)], { env });
      expect(pasted.exitCode).toBe(0);
      expect(existsSync(marker)).toBe(false);
      expect(await cli(["exec", "-w", dir, "wd-hint", `pwd; test -e ${marker} || echo none`], { env })).toMatchObject({ code: 0, stdout: `${dir}\nnone\n` });
    } finally {
      expect((await cli(["destroy", "wd-hint"], { env })).code).toBe(0);
    }
  }, 30_000);
});

describe("a state directory that cannot be written", () => {
  // Told as "internal error … a bug in sandboxes" before, or as the failed clean-up of a file
  // never made (rm: EFAULT, EACCES) in place of the first error.
  test("is one line naming the path and XDG_STATE_HOME, exit 125, with --json too", async () => {
    const { env, home } = freshEnv();
    const file = join(home, "not-a-directory");
    writeFileSync(file, "");
    env.XDG_STATE_HOME = file;
    const hint = `sandboxes keeps its state in ${file}/sandboxes: make that writable, or set XDG_STATE_HOME to a directory that is`;
    for (const args of [["run", "echo hi"], ["run", "--keep", "-n", "box", "true"]]) {
      const r = await cli(args, { env });
      expect(r.code).toBe(125);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(new RegExp(`^sandboxes: cannot make ${file}/sandboxes/local\\S*: a part of the path is not a directory: `));
      expect(r.stderr).toEndWith(`${hint}\n`);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    const json = await cli(["run", "--json", "echo hi"], { env });
    expect(json.code).toBe(125);
    expect(JSON.parse(json.stdout).error).toMatchObject({ code: "file_system", hint, exit_code: 125 });
  });
});

describe("names and labels in tables", () => {
  test("a refused name creates nothing; a label's control characters are escaped in list's rows, as they are in --json", async () => {
    const { env } = freshEnv();
    expect((await cli(["run", "--keep", "-n", "a\nb", "true"], { env })).code).toBe(125);
    expect(JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes).toEqual([]);
    const label = "note=one\ttwo\nthree \u001b[2J\u009b";
    const kept = await cli(["run", "--keep", "-n", "box-1.a_b", "-l", label, "true"], { env });
    expect(kept.code).toBe(0);
    const rows = (await cli(["list"], { env })).stdout.split("\n").filter(Boolean);
    expect(rows).toHaveLength(2);
    expect(rows[1]!.split("\t").slice(2)).toEqual(["box-1.a_b", "running", "note=one\\ttwo\\nthree \\x1b[2J\\x9b", expect.stringMatching(/^\d+s$/)]);
    const listed = JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes;
    expect(listed.map((sandbox: { labels: Record<string, string> }) => sandbox.labels)).toEqual([{ note: "one\ttwo\nthree \u001b[2J\u009b" }]);
    expect((await cli(["destroy", "box-1.a_b"], { env })).code).toBe(0);
  }, 30_000);
});

// The XDG spec has a relative XDG_STATE_HOME or XDG_CONFIG_HOME ignored. Taken as given, the state
// went under whatever directory a command ran in: a sandbox kept from one directory was not
// listed, nor destroyable by name, from another.
describe("relative XDG directories are ignored, as the spec says", () => {
  test("a sandbox kept from one directory is found from another; a config there is not read", async () => {
    const { env, home } = freshEnv({ XDG_STATE_HOME: "state", XDG_CONFIG_HOME: "config" });
    const [first, second] = [join(home, "first"), join(home, "second")];
    for (const dir of [first, second]) mkdirSync(dir);
    // A config the relative XDG_CONFIG_HOME would name from `first`: unreadable TOML.
    mkdirSync(join(first, "config/sandboxes"), { recursive: true });
    writeFileSync(join(first, "config/sandboxes/config.toml"), "default_provider = \n");
    const kept = await cli(["run", "--keep", "-n", "relative-xdg", "true"], { env, cwd: first });
    expect({ code: kept.code, stderr: kept.stderr }).toMatchObject({ code: 0, stderr: expect.stringContaining("kept sandbox") });
    expect(existsSync(join(first, "state"))).toBe(false);
    expect(existsSync(join(home, ".local/state/sandboxes"))).toBe(true);
    const listed = await cli(["list", "--json"], { env, cwd: second });
    expect((JSON.parse(listed.stdout) as { sandboxes: Array<{ name?: string }> }).sandboxes.map((sandbox) => sandbox.name)).toEqual(["relative-xdg"]);
    expect((await cli(["destroy", "relative-xdg"], { env, cwd: second })).code).toBe(0);
    expect(existsSync(join(second, "state"))).toBe(false);
  }, 30_000);
});

describe("cp: streamed both ways, and only what is safe to write here", () => {
  /** A kept sandbox named `name` that `command` prepared, for `body`; destroyed after it, whatever happens. */
  async function withKept(name: string, command: string, body: (at: { env: Record<string, string>; home: string; id: string }) => Promise<void>): Promise<void> {
    const { env, home } = freshEnv();
    const id = /kept sandbox (\S+)/.exec((await cli(["run", "--keep", "-n", name, command], { env })).stderr)![1]!;
    try {
      await body({ env, home, id });
    } finally {
      await cli(["destroy", id], { env });
    }
  }

  // What a program leaves for the user to copy out: a setuid file, a setgid directory, a FIFO,
  // links (one absolute), and 200 MiB, which cp streams to disk (its memory: bench/output.ts).
  const LEAVE = [
    "mkdir -p /tmp/d/shared && chmod 2775 /tmp/d/shared",
    "printf 'x\\n' > /tmp/d/tool && chmod 4755 /tmp/d/tool",
    "mkfifo /tmp/d/pipe",
    "ln -s /etc/hostname /tmp/d/abs && ln -s tool /tmp/d/rel",
    "yes 0123456789abcdef | head -c 200M > /tmp/d/big.bin",
  ].join(" && ");

  test("cp writes files, directories and links without their special bits, says what it skipped, and every byte arrives", async () => {
    await withKept("left", LEAVE, async ({ env, home, id }) => {
      const inside = (await cli(["exec", "left", "sha256sum < /tmp/d/big.bin"], { env })).stdout.split(" ")[0];
      const copied = await cli(["cp", "left:/tmp/d", join(home, "out")], { env });
      expect(copied.code).toBe(0);
      expect(copied.stderr.split("\n").map((line) => line.trim()).filter(Boolean)).toEqual([
        "WARN  skipped 1 entry of /tmp/d: cp copies files, directories and links, and only inside the copy (d/pipe: unsupported entry type: FIFO)",
        `✔ copied /tmp/d -> ${join(home, "out")}`,
      ]);
      const out = join(home, "out");
      expect(readdirSync(out).sort()).toEqual(["abs", "big.bin", "rel", "shared", "tool"]);
      expect(statSync(join(out, "tool")).mode & 0o7777).toBe(0o755);
      expect(statSync(join(out, "shared")).mode & 0o7000).toBe(0);
      expect(readlinkSync(join(out, "abs"))).toBe("/etc/hostname");
      expect(readlinkSync(join(out, "rel"))).toBe("tool");
      expect(statSync(join(out, "big.bin")).size).toBe(200 * 1024 * 1024);
      expect(new Bun.CryptoHasher("sha256").update(await Bun.file(join(out, "big.bin")).bytes()).digest("hex")).toBe(inside!);

      const json = await cli(["cp", "--json", "left:/tmp/d", join(home, "again")], { env });
      expect(JSON.parse(json.stdout)).toEqual({ direction: "download", sandbox_id: id, provider: "local", from: "/tmp/d", to: join(home, "again"), skipped: 1 });

      // run --download says the same, as a notice, and keeps the program's exit code.
      const run = await cli(["run", "--download", `/tmp/d:${join(home, "from-run")}`, `${LEAVE} && exit 3`], { env });
      expect(run.code).toBe(3);
      expect(run.stderr).toContain("skipped 1 entry of /tmp/d: cp copies files, directories and links, and only inside the copy (d/pipe: unsupported entry type: FIFO)");
      expect(statSync(join(home, "from-run/big.bin")).size).toBe(200 * 1024 * 1024);
    });
  }, 120_000);

  test("cp into a sandbox streams too: 200 MiB arrive byte for byte", async () => {
    await withKept("into", "true", async ({ env, home }) => {
      const big = new Uint8Array(200 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
      mkdirSync(join(home, "data"));
      writeFileSync(join(home, "data/big.bin"), big);
      writeFileSync(join(home, "data/run.sh"), "#!/bin/sh\necho ran\n", { mode: 0o755 });
      const copied = await cli(["cp", join(home, "data"), "into:/tmp/"], { env });
      expect(copied.code).toBe(0);
      const inside = await cli(["exec", "into", "sha256sum < /tmp/data/big.bin; /tmp/data/run.sh"], { env });
      expect(inside.stdout).toBe(`${new Bun.CryptoHasher("sha256").update(big).digest("hex")}  -\nran\n`);
    });
  }, 120_000);

  test("Ctrl-C stops a copy either way at once: 130 or 143, no partial copy here, no tar left", async () => {
    await withKept("long", "head -c 1G /dev/zero > /tmp/big", async ({ env, home }) => {
      const until = async (ready: () => boolean) => {
        for (let i = 0; i < 400 && !ready(); i++) await Bun.sleep(25);
        expect(ready()).toBe(true);
      };
      // Out: once the staging directory where the copy lands (in the existing directory) has its first bytes.
      mkdirSync(join(home, "down"));
      const staging = () => readdirSync(join(home, "down")).filter((name) => name.startsWith(".sandboxes-cp-"));
      const down = spawnCli(["cp", "long:/tmp/big", join(home, "down")], env);
      await until(() => staging().some((dir) => readdirSync(join(home, "down", dir)).length > 0));
      down.kill("SIGINT");
      expect(await down.exited).toBe(130);
      expect(await new Response(down.stderr).text()).toBe("sandboxes: interrupted by SIGINT\n");
      expect(readdirSync(join(home, "down"))).toEqual([]);
      expect(staging()).toEqual([]);

      // In: once this machine's tar is packing.
      Bun.spawnSync(["sh", "-c", `head -c 1G /dev/zero > "$1"`, "sh", join(home, "in.bin")]);
      const packing = () => Bun.spawnSync(["pgrep", "-f", `tar -c -f - .*${home}`]).exitCode === 0;
      const up = spawnCli(["cp", join(home, "in.bin"), "long:/tmp/in.bin"], env);
      await until(packing);
      up.kill("SIGTERM");
      expect(await up.exited).toBe(143);
      expect(await new Response(up.stderr).text()).toBe("sandboxes: interrupted by SIGTERM\n");
      expect(packing()).toBe(false);
    });
  }, 120_000);

  // As root: the binary runs in a mount namespace of this test's own, where the directory copied
  // into is a tmpfs of 16 MiB (a disk of its own), and one directory below it another.
  test.if(process.getuid?.() === 0)("into a directory that is a filesystem of its own, cp lands there; a copy that cannot fit is refused before its bytes, nothing written", async () => {
    await withKept("mounts", "mkdir -p /tmp/d/inner && echo hi > /tmp/d/f && echo deep > /tmp/d/inner/g && truncate -s 1G /tmp/sparse && head -c 12M /dev/zero > /tmp/d/inner/twelve", async ({ env, home }) => {
      const disk = join(home, "disk");
      mkdirSync(disk);
      const script = [
        'mount -t tmpfs -o size=16m disk "$1" && mkdir "$1/d" && mount -t tmpfs -o size=1m inner "$1/d"',
        'echo mine > "$1/d/mine" && ln -s /etc/hostname "$1/d/f"',
        '"$2" cp mounts:/tmp/d/f mounts:/tmp/d/inner "$1" 2>&1; echo "exit $?"',
        '"$2" cp mounts:/tmp/d/f "$1/d" 2>&1; echo "exit $?"; cat "$1/d/f" "$1/d/mine"; [ -L "$1/d/f" ] || echo "not a link"',
        '"$2" cp mounts:/tmp/sparse "$1" 2>&1; echo "exit $?"',
        'mkdir "$1/d/inner" && echo "keep me" > "$1/d/inner/twelve"',
        '"$2" cp mounts:/tmp/d "$1" 2>&1; echo "exit $?"; cat "$1/d/inner/twelve"',
        'ls -A "$1" "$1/d" "$1/d/inner"',
      ].join("; ");
      const inNamespace = Bun.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", disk, BINARY], { env, stdout: "pipe", stderr: "pipe" });
      const [out, err] = await Promise.all([new Response(inNamespace.stdout).text(), new Response(inNamespace.stderr).text(), inNamespace.exited]);
      expect(err).toBe("");
      expect(out.split("\n")).toEqual([
        // Two sources at once are not what cp takes; then one at a time, into the 1 MiB disk below.
        "sandboxes: cp takes exactly SRC and DST",
        "exit 2",
        `✔ copied /tmp/d/f -> ${disk}/d/f`,
        "exit 0",
        // Your link at d/f is replaced, not written through; your file beside it stays.
        "hi",
        "mine",
        "not a link",
        `sandboxes: cannot copy to ${disk}: its files need more than the 16.0 MiB free there (sparse alone is 1.0 GiB): free some space or copy elsewhere; a file can take far more room here than in the sandbox (a sparse file is copied whole)`,
        "exit 1",
        // d merges into the 1 MiB disk at d, whose space the copy cannot see beforehand: its 12
        // MiB file cannot fit there; your file of that name stays as it was, nothing half-written
        // (what fitted before it, inner/g, arrived, as with cp -r).
        `sandboxes: cannot write ${disk}/d/inner/twelve: no space left on the device`,
        "exit 1",
        "keep me",
        `${disk}:`,
        "d",
        "",
        `${disk}/d:`,
        "f",
        "inner",
        "mine",
        "",
        `${disk}/d/inner:`,
        "g",
        "twelve",
        "",
      ]);
    });
  }, 60_000);

  test("into an existing directory cp merges, as cp -r: what is there stays; a directory never replaces a file nor the reverse", async () => {
    await withKept("merge", "mkdir -p /tmp/d/sub && echo new > /tmp/d/a && echo new > /tmp/d/sub/b && echo file > /tmp/file", async ({ env, home, id }) => {
      // Out: the user's own files in out/d stay beside what arrives.
      mkdirSync(join(home, "out/d/sub"), { recursive: true });
      writeFileSync(join(home, "out/d/mine"), "mine\n");
      writeFileSync(join(home, "out/d/a"), "old\n");
      writeFileSync(join(home, "out/d/sub/keep"), "keep\n");
      expect((await cli(["cp", "merge:/tmp/d", join(home, "out")], { env })).code).toBe(0);
      const text = (path: string) => Bun.file(join(home, "out/d", path)).text();
      expect([await text("mine"), await text("a"), await text("sub/keep"), await text("sub/b")]).toEqual(["mine\n", "new\n", "keep\n", "new\n"]);

      // A directory onto a file, a file onto a directory: one line, exit 1, nothing changed.
      writeFileSync(join(home, "file"), "mine\n");
      const ontoFile = await cli(["cp", "merge:/tmp/d", join(home, "file")], { env });
      expect(ontoFile).toMatchObject({ code: 1, stdout: "", stderr: `sandboxes: cannot overwrite non-directory ${join(home, "file")} with a directory: copy to another path, or move what is there out of the way\n` });
      expect(await Bun.file(join(home, "file")).text()).toBe("mine\n");
      mkdirSync(join(home, "dir/file"), { recursive: true });
      const ontoDir = await cli(["cp", "merge:/tmp/file", join(home, "dir")], { env });
      expect(ontoDir.stderr).toBe(`sandboxes: cannot overwrite directory ${join(home, "dir/file")} with a non-directory: copy to another path, or move what is there out of the way\n`);
      expect(ontoDir.code).toBe(1);
      // A directory here that does not exist is said before anything is transferred.
      const missing = await cli(["cp", "merge:/tmp/file", join(home, "nowhere/x")], { env });
      expect(missing).toMatchObject({ code: 1, stderr: `sandboxes: cannot copy to ${join(home, "nowhere/x")}: directory ${join(home, "nowhere")} does not exist\n` });
      // No staging directory is left where any of these copies landed (an existing directory) or would have.
      for (const place of [home, join(home, "out"), join(home, "dir")]) expect(readdirSync(place).filter((name) => name.startsWith(".sandboxes-cp-"))).toEqual([]);
      // run --download says it before the program runs, not after.
      const early = await cli(["run", "--download", `/tmp/x:${join(home, "nowhere/x")}`, "echo RAN"], { env });
      expect(early).toMatchObject({ code: 125, stdout: "", stderr: `sandboxes: cannot copy to ${join(home, "nowhere/x")}: directory ${join(home, "nowhere")} does not exist\n` });

      // In: the same rules in the sandbox; the sandbox's file is not replaced by a directory.
      mkdirSync(join(home, "up/file"), { recursive: true });
      const intoSandbox = await cli(["cp", join(home, "up/file"), "merge:/tmp/"], { env });
      expect(intoSandbox).toMatchObject({ code: 1, stderr: `sandboxes: cannot overwrite non-directory ${id}:/tmp/file with a directory: copy to another path, or move what is there out of the way\n` });
      writeFileSync(join(home, "up/sub"), "x\n");
      const fileOntoDir = await cli(["cp", join(home, "up/sub"), "merge:/tmp/d"], { env });
      expect(fileOntoDir).toMatchObject({ code: 1, stderr: `sandboxes: cannot overwrite directory ${id}:/tmp/d/sub with a non-directory: copy to another path, or move what is there out of the way\n` });
      expect((await cli(["exec", "merge", "cat /tmp/file; ls /tmp/d/sub"], { env })).stdout).toBe("file\nb\n");
    });
  }, 60_000);

  test("`-` is a tar archive on stdout or from stdin, as docker cp; a reader that goes away stops the copy (141)", async () => {
    await withKept("tar", "mkdir -p /tmp/d/sub && echo a > /tmp/d/a && ln -s /etc/hostname /tmp/d/link && head -c 300M /dev/zero > /tmp/big && mkdir /tmp/in", async ({ env, home, id }) => {
      // Out: the sandbox's archive as it sent it, nothing unpacked here, nothing else on stdout.
      const out = await cli(["cp", "tar:/tmp/d/", "-"], { env });
      expect(out.code).toBe(0);
      expect(out.stderr).toBe("");
      mkdirSync(join(home, "x"));
      Bun.spawnSync(["tar", "-x", "-f", "-", "-C", join(home, "x")], { stdin: out.stdoutBytes });
      expect(readdirSync(join(home, "x/d")).sort()).toEqual(["a", "link", "sub"]);
      expect(readlinkSync(join(home, "x/d/link"))).toBe("/etc/hostname");

      // A reader that takes 64 KiB of 300 MiB and leaves: 141, no message, the sandbox's tar stopped.
      const reading = Bun.spawn([BINARY, "cp", "tar:/tmp/big", "-"], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
      const reader = reading.stdout.getReader();
      for (let got = 0; got < 65536; ) got += (await reader.read()).value?.length ?? 65536;
      await reader.cancel();
      expect(await reading.exited).toBe(141);
      expect(await new Response(reading.stderr).text()).toBe("");
      expect((await cli(["exec", "tar", "pgrep -x tar || echo none"], { env })).stdout).toBe("none\n");

      // In: a tar from stdin unpacked in a directory of the sandbox.
      mkdirSync(join(home, "src/lib"), { recursive: true });
      writeFileSync(join(home, "src/lib/main.py"), "print(1)\n");
      const archive = Bun.spawnSync(["tar", "-c", "-f", "-", "-C", home, "src"]).stdout;
      const sent = await cli(["cp", "-", "tar:/tmp/in"], { env, stdin: archive });
      expect(sent).toMatchObject({ code: 0, stderr: `✔ copied standard input -> ${id}:/tmp/in\n` });
      expect((await cli(["exec", "tar", "cat /tmp/in/src/lib/main.py"], { env })).stdout).toBe("print(1)\n");
      expect(await cli(["cp", "-", "tar:/tmp/d/a"], { env, stdin: archive })).toMatchObject({
        code: 1,
        stderr: `sandboxes: ${id}:/tmp/d/a is not a directory: cp - unpacks a tar archive into a directory of the sandbox\n`,
      });
      expect(await cli(["cp", "-", "tar:/tmp/in"], { env, stdin: "not a tar\n" })).toMatchObject({ code: 1, stderr: "sandboxes: cannot write files into /tmp/in: This does not look like a tar archive\n" });
    });
  }, 60_000);

  test("a sandbox's one-letter name is a sandbox here, not a drive", async () => {
    await withKept("q", "echo one > /tmp/one", async ({ env, home }) => {
      expect((await cli(["cp", "q:/tmp/one", join(home, "one")], { env })).code).toBe(0);
      expect(await Bun.file(join(home, "one")).text()).toBe("one\n");
    });
  }, 60_000);

  test("a file this machine's tar cannot read is named in one line, exit 1 (an ordinary user)", async () => {
    const { dir, home, env, command } = nobodyMachine("sandboxes-cp-user-");
    try {
      const as = (args: string[]) => {
        const result = Bun.spawnSync([...command, ...args], { env, cwd: home });
        return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() };
      };
      mkdirSync(join(home, "d"));
      writeFileSync(join(home, "d/ok"), "ok\n");
      writeFileSync(join(home, "d/secret"), "no\n", { mode: 0o000 });
      chownSync(join(home, "d"), NOBODY, NOBODY);
      chownSync(join(home, "d/secret"), NOBODY, NOBODY);
      expect(as(["run", "--keep", "-n", "up", "true"]).code).toBe(0);
      const copied = as(["cp", join(home, "d"), "up:/tmp/"]);
      expect(copied).toEqual({ code: 1, stdout: "", stderr: `sandboxes: cannot read ${join(home, "d")}: d/secret: Cannot open: Permission denied\n` });
      const json = as(["cp", "--json", join(home, "d"), "up:/tmp/"]);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout).error).toEqual({ code: "file_transfer_failed", message: `cannot read ${join(home, "d")}: d/secret: Cannot open: Permission denied`, exit_code: 1 });
      expect(as(["destroy", "up"]).code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
