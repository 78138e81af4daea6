import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, cli, freshEnv, spawnCli } from "../helpers";

const localSandboxes = (home: string) => {
  const dir = join(home, ".local/state/sandboxes/local");
  return existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith("local-")) : [];
};

describe("run: the contract for programs that shell out", () => {
  test("stdout and stderr pass through byte for byte; exit code is the program's", async () => {
    const { env, home } = freshEnv();
    const r = await cli(["run", "printf 'a\\nb'; printf 'oops\\n' >&2; exit 42"], { env });
    expect(r.stdout).toBe("a\nb");
    expect(r.stderr).toBe("oops\n");
    expect(r.code).toBe(42);
    expect(localSandboxes(home)).toEqual([]);
  });

  test("binary stdout is untouched", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "printf '\\000\\377\\200abc'"], { env });
    expect([...r.stdoutBytes]).toEqual([0, 255, 128, 97, 98, 99]);
  });

  test("killed by a signal: 128+N", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "kill -TERM $$"], { env });
    expect(r.code).toBe(143);
  });

  test("--timeout: exit 124 and the whole process tree is gone", async () => {
    const { env, home } = freshEnv();
    // A duration of this run's own: the machine's other `sleep`s are not this test's tree.
    const seconds = 3000 + Math.floor(Math.random() * 100000);
    const r = await cli(["run", "-t", "1", `(sleep ${seconds}; echo late) & sleep ${seconds}`], { env });
    expect(r.code).toBe(124);
    expect(r.stderr).toContain("timed out after 1s");
    expect(r.stdout).toBe("");
    const ps = Bun.spawnSync(["ps", "-eo", "args"]).stdout.toString();
    expect(ps).not.toContain(`sleep ${seconds}`);
    expect(localSandboxes(home)).toEqual([]);
  });

  test("arguments after -- reach the program, quoted safely", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "printf '%s|' ", "--", "a b", "it's", "$HOME"], { env });
    expect(r.stdout).toBe("a b|it's|$HOME|");
  });

  test("run -- PROG ARGS… runs the words after -- as the command", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "--", "printf", "%s|", "a b", "it's"], { env });
    expect(r.stdout).toBe("a b|it's|");
    expect(r.code).toBe(0);
  });

  test("a slow reader gets every byte (backpressure, not buffering or truncation)", async () => {
    const { env } = freshEnv();
    /** Runs `head -c BYTES` behind a reader that stalls first; the peak memory (VmHWM) of the sandboxes process. */
    const slowlyRead = async (bytes: number) => {
      const child = Bun.spawn([BINARY, "run", `head -c ${bytes} /dev/zero`], { env, stdout: "pipe", stderr: "pipe" });
      let peak = 0;
      const sample = () => {
        const kb = /VmHWM:\s+(\d+) kB/.exec(existsSync(`/proc/${child.pid}/status`) ? readFileSync(`/proc/${child.pid}/status`, "utf8") : "")?.[1];
        if (kb) peak = Math.max(peak, Number(kb) * 1024);
      };
      const sampler = setInterval(sample, 10);
      // The slow reader: nothing read for a second (the program blocks on a full pipe), then all of it.
      await Bun.sleep(1000);
      let received = 0;
      for await (const chunk of child.stdout as ReadableStream<Uint8Array>) {
        received += chunk.length;
        sample();
      }
      clearInterval(sampler);
      return { received, code: await child.exited, peak };
    };
    const baseline = await slowlyRead(1024);
    const bytes = 192 * 1024 * 1024;
    const big = await slowlyRead(bytes);
    expect(baseline).toMatchObject({ received: 1024, code: 0 });
    expect(big).toMatchObject({ received: bytes, code: 0 });
    expect(baseline.peak).toBeGreaterThan(0);
    // Buffering would hold most of the output; what it grows by is the garbage of passing it on.
    expect(big.peak - baseline.peak).toBeLessThan(bytes / 4);
  }, 60_000);

  test("a reader that goes away stops the program: exit 141, nothing left behind", async () => {
    const { env, home } = freshEnv();
    const pipeline = Bun.spawn(["bash", "-c", `'${BINARY}' run yes | head -1; echo "status \${PIPESTATUS[0]}"`], { env, stdout: "pipe", stderr: "pipe" });
    expect(await new Response(pipeline.stdout).text()).toBe("y\nstatus 141\n");
    expect(await new Response(pipeline.stderr).text()).toBe("");
    expect(localSandboxes(home)).toEqual([]);
  });

  test("stdin goes to the program", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "tr a-z A-Z"], { env, stdin: "hello\n" });
    expect(r.stdout).toBe("HELLO\n");
  });

  test("streams output live, before the program ends", async () => {
    const { env } = freshEnv();
    const child = spawnCli(["run", "echo first; sleep 2; echo second"], env);
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    const started = Date.now();
    const first = await reader.read();
    const firstAfter = Date.now() - started;
    expect(new TextDecoder().decode(first.value)).toBe("first\n");
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe("second\n");
    expect(Date.now() - started - firstAfter).toBeGreaterThan(1000);
    expect(await child.exited).toBe(0);
  });

  test("--json: exactly one document with the documented fields", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "--json", "echo out; echo err >&2; exit 3"], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toBe("");
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ provider: "local", exit_code: 3, stdout: "out\n", stderr: "err\n", timed_out: false });
    expect(doc.sandbox_id).toMatch(/^local-[0-9a-f]{12}$/);
    expect(typeof doc.duration_ms).toBe("number");
    expect(doc.stdout_base64).toBeUndefined();
  });

  test("--json: invalid UTF-8 output also comes as base64", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "--json", "printf '\\377ok'"], { env });
    const doc = JSON.parse(r.stdout);
    expect(Buffer.from(doc.stdout_base64, "base64")).toEqual(Buffer.from([255, 111, 107]));
  });

  test("--json: timeout is reported", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "--json", "-t", "0.5", "sleep 10"], { env });
    expect(r.code).toBe(124);
    expect(JSON.parse(r.stdout)).toMatchObject({ exit_code: 124, timed_out: true });
  });

  test("--json: failures are one error document, exit 125", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "--json", "-p", "nope", "true"], { env });
    expect(r.code).toBe(125);
    const doc = JSON.parse(r.stdout);
    expect(doc.error.code).toBe("unknown_provider");
    expect(doc.error.message).toContain("known providers: local");
  });

  test("-e KEY=VALUE, -e KEY passthrough, --env-file; the caller's environment stays out", async () => {
    const { env, home } = freshEnv({ PASSED: "from-caller", SECRET_TOKEN: "must-not-leak" });
    const envFile = join(home, "vars.env");
    writeFileSync(envFile, "# comment\nFROM_FILE=file value\nexport QUOTED=\"q v\"\n");
    const r = await cli(["run", "-e", "A=1", "-e", "B=x=y", "-e", "PASSED", "-e", "UNSET_VAR", "--env-file", envFile, 'echo "$A|$B|$PASSED|${UNSET_VAR-unset}|$FROM_FILE|$QUOTED|${SECRET_TOKEN-clean}"'], { env });
    expect(r.stdout).toBe("1|x=y|from-caller|unset|file value|q v|clean\n");
  });

  test("--workdir", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "-w", "/tmp", "pwd"], { env });
    expect(r.stdout).toBe("/tmp\n");
  });

  test("--upload a directory and --download a result", async () => {
    const { env, home } = freshEnv();
    const project = join(home, "proj");
    mkdirSync(join(project, "sub"), { recursive: true });
    writeFileSync(join(project, "sub", "data.txt"), "payload\n");
    const out = join(home, "result.txt");
    const r = await cli(["run", "--upload", `${project}:/tmp/p`, "--download", `/tmp/p/out.txt:${out}`, "cat /tmp/p/sub/data.txt | tr a-z A-Z > /tmp/p/out.txt"], { env });
    expect(r.code).toBe(0);
    expect(await Bun.file(out).text()).toBe("PAYLOAD\n");
  });

  test("--network none cuts the sandbox off", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "--network", "none", "cat /proc/net/dev | grep -c ':'"], { env });
    expect(r.stdout.trim()).toBe("1");
  });

  test("--keep prints the id; exec, list, cp and destroy find it by id and by name", async () => {
    const { env, home } = freshEnv();
    const kept = await cli(["run", "--keep", "-n", "box1", "-l", "team=a", "echo data > ~/state.txt"], { env });
    expect(kept.code).toBe(0);
    const id = /kept sandbox (local-[0-9a-f]{12})/.exec(kept.stderr)?.[1];
    expect(id).toBeDefined();

    const byName = await cli(["exec", "box1", "cat ~/state.txt"], { env });
    expect(byName.stdout).toBe("data\n");
    const byId = await cli(["exec", id!, "-e", "X=7", "--", "sh", "-c", "echo $X"], { env });
    expect(byId.stdout).toBe("7\n");
    expect((await cli(["exec", id!, "exit 9"], { env })).code).toBe(9);

    const list = await cli(["list"], { env });
    expect(list.stdout).toContain(id!);
    expect(list.stdout).toContain("box1");
    expect(list.stdout).toContain("team=a");
    const filtered = await cli(["list", "--json", "-l", "team=b"], { env });
    expect(JSON.parse(filtered.stdout).sandboxes).toEqual([]);

    const reused = await cli(["run", "--reuse", "-l", "team=a", "--json", "cat ~/state.txt"], { env });
    expect(JSON.parse(reused.stdout)).toMatchObject({ sandbox_id: id, stdout: "data\n", reused: true });
    expect(localSandboxes(home)).toEqual([id!]);

    const first = await cli(["run", "--reuse", "-l", "pool=x", "--json", "echo 1 > ~/n"], { env });
    const second = await cli(["run", "--reuse", "-l", "pool=x", "--json", "cat ~/n"], { env });
    expect(JSON.parse(first.stdout).reused).toBe(false);
    expect(JSON.parse(second.stdout)).toMatchObject({ reused: true, stdout: "1\n", sandbox_id: JSON.parse(first.stdout).sandbox_id });
    expect((await cli(["destroy", "--all", "-l", "pool=x", "--yes"], { env })).code).toBe(0);

    const clash = await cli(["run", "-n", "box1", "true"], { env });
    expect(clash.code).toBe(125);
    expect(clash.stderr).toContain('a sandbox named "box1" already exists');

    const destroyed = await cli(["destroy", "box1"], { env });
    expect(destroyed.code).toBe(0);
    expect(destroyed.stdout).toBe(`${id}\n`);
    expect(localSandboxes(home)).toEqual([]);
    const gone = await cli(["exec", id!, "true"], { env });
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain(`no sandbox "${id}"`);
  });

  test("SIGINT and SIGTERM mid-run: exit 130/143 and nothing left behind", async () => {
    for (const [signal, expected] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      const { env, home } = freshEnv();
      const child = spawnCli(["run", "echo started; sleep 60"], env);
      const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe("started\n");
      expect(localSandboxes(home).length).toBe(1);
      child.kill(signal);
      expect(await child.exited).toBe(expected);
      expect(localSandboxes(home)).toEqual([]);
    }
  });
});

describe("run: code from files and stdin", () => {
  test("--file runs the uploaded file with its arguments", async () => {
    const { env, home } = freshEnv();
    const file = join(home, "main.py");
    writeFileSync(file, "import sys\nprint(\"it's\", sys.argv[1:])\nsys.exit(4)\n");
    const r = await cli(["run", "--file", file, "--", "x", "y z"], { env });
    expect(r.stdout).toBe("it's ['x', 'y z']\n");
    expect(r.code).toBe(4);
  });

  test("code on stdin with --lang", async () => {
    const { env } = freshEnv();
    const r = await cli(["run", "--lang", "python"], { env, stdin: "print(\"EOF '''\")\n" });
    expect(r.stdout).toBe("EOF '''\n");
  });

  test("a missing runtime is a clear error, exit 125, no sandbox left", async () => {
    const { env, home } = freshEnv();
    const file = join(home, "analysis.R");
    writeFileSync(file, "cat('hi')\n");
    const r = await cli(["run", "-f", file], { env });
    expect(r.code).toBe(125);
    // One line, and nothing of the check that found it (its line on the program's stderr).
    expect(r.stderr).toBe("sandboxes: Rscript is not installed in this sandbox, so r cannot run: pass --image with one that has it\n");
    expect(r.stdout).toBe("");
    expect(localSandboxes(home)).toEqual([]);
  });

  test("--deps installs from the manifest beside the file (npm, offline: a file: dependency)", async () => {
    const { env, home } = freshEnv();
    const project = join(home, "app");
    mkdirSync(join(project, "greeter"), { recursive: true });
    writeFileSync(join(project, "greeter", "package.json"), JSON.stringify({ name: "greeter", version: "1.0.0", main: "index.js" }));
    writeFileSync(join(project, "greeter", "index.js"), "module.exports = (n) => `hello ${n}`;\n");
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", dependencies: { greeter: "file:./greeter" } }));
    writeFileSync(join(project, "main.js"), "console.log(require('greeter')('deps'));\n");
    const r = await cli(["run", "--deps", "-f", join(project, "main.js")], { env });
    expect(r.stdout).toBe("hello deps\n");
    expect(r.code).toBe(0);
  });

  test("--deps with go.mod: the module is uploaded, downloaded and built", async () => {
    const { env, home } = freshEnv({ HOME: process.env.HOME ?? "/root" });
    const project = join(env.XDG_STATE_HOME!, "gomod");
    mkdirSync(join(project, "greet"), { recursive: true });
    writeFileSync(join(project, "go.mod"), "module example.com/app\n\ngo 1.19\n");
    writeFileSync(join(project, "greet", "greet.go"), 'package greet\n\nfunc Hello(n string) string { return "hello " + n }\n');
    writeFileSync(join(project, "main.go"), 'package main\n\nimport (\n\t"fmt"\n\t"os"\n\t"example.com/app/greet"\n)\n\nfunc main() { fmt.Println(greet.Hello(os.Args[1])); os.Exit(5) }\n');
    const r = await cli(["run", "--deps", "-f", join(project, "main.go"), "--", "gopher"], { env });
    expect(r.stdout).toBe("hello gopher\n");
    expect(r.code).toBe(5);
    expect(localSandboxes(home)).toEqual([]);
  }, 120_000);
});
