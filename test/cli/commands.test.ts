/**
 * Commands called in-process with a fake IO (test/cli/_io.ts), for their terminal and their
 * piped renderings, as gh tests its commands; test/e2e/ runs the same through the binary.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../../src/base/errors";
import { COMMANDS } from "../../src/cli/registry";
import { freshEnv } from "../helpers";
import { fakeIO, runInProcess } from "./_io";

const { env, home } = freshEnv();
afterAll(() => rmSync(home, { recursive: true, force: true }));
const command = async (name: keyof typeof COMMANDS) => (await COMMANDS[name]()).default;
const call = async (name: keyof typeof COMMANDS, argv: string[], io = fakeIO({ tty: false })) => ({ code: await runInProcess(await command(name), argv, io, env), out: io.out(), err: io.err(), io });

/** A kept local sandbox with this name, destroyed after the test. */
async function keptSandbox(name: string): Promise<string> {
  const { code, err } = await call("run", ["-p", "local", "--keep", "-n", name, "-l", "suite=cli", "true"]);
  expect(code).toBe(0);
  return /kept sandbox (\S+)/.exec(err)![1]!;
}
const destroyAll = () => call("destroy", ["--all", "--yes", "-l", "suite=cli"]);

describe("providers", () => {
  test("piped: tab-separated rows, the default named; on a terminal: aligned columns", async () => {
    const piped = await call("providers", []);
    expect(piped.code).toBe(0);
    expect(piped.out.split("\n")[0]).toBe("PROVIDER\tCONFIGURED\tSOURCE / TO CONFIGURE\tCAPABILITIES\tDETAILS");
    expect(piped.out).toContain("\ndefault: local (");
    const tty = await call("providers", [], fakeIO({ tty: true }));
    expect(tty.out.split("\n")[0]).toMatch(/^PROVIDER +CONFIGURED +SOURCE \/ TO CONFIGURE +CAPABILITIES +DETAILS$/);
    expect(tty.out).not.toContain("\t");
  });

  test("--json is one document, the same on a terminal", async () => {
    for (const tty of [false, true]) {
      const { out, err } = await call("providers", ["--json"], fakeIO({ tty }));
      expect(JSON.parse(out).default.name).toBe("local");
      expect(err).toBe("");
    }
  });
});

describe("list", () => {
  test("no sandboxes: nothing on stdout, a note on stderr; --json an empty list", async () => {
    expect(await call("list", [])).toMatchObject({ code: 0, out: "", err: "INFO no sandboxes\n" });
    expect(JSON.parse((await call("list", ["--json"])).out)).toEqual({ sandboxes: [], warnings: [] });
  });

  test("piped rows are tab-separated with the full id; terminal rows aligned", async () => {
    try {
      const id = await keptSandbox("listed");
      const piped = await call("list", ["-l", "suite=cli"]);
      expect(piped.out.split("\n")[1]!.split("\t").slice(0, 4)).toEqual([id, "local", "listed", "running"]);
      const tty = await call("list", ["-l", "suite=cli"], fakeIO({ tty: true }));
      expect(tty.out.split("\n")[0]).toMatch(/^ID +PROVIDER +NAME +STATE +LABELS +AGE$/);
      expect(tty.out).toContain(id);
      expect(tty.out).not.toContain("\t");
    } finally {
      await destroyAll();
    }
  }, 60_000);

  test("a bad label is refused by toOptions, before any provider is asked", async () => {
    await expect(call("list", ["-l", "novalue"])).rejects.toThrow(UsageError);
  });
});

describe("destroy", () => {
  test("--all without --yes: refused when piped, asked on a terminal (declined: nothing destroyed, exit 1)", async () => {
    try {
      const id = await keptSandbox("doomed");
      await expect(call("destroy", ["--all", "-l", "suite=cli"])).rejects.toThrow("add --yes");
      const declined = await call("destroy", ["--all", "-l", "suite=cli"], fakeIO({ tty: true, answers: [false] }));
      expect(declined).toMatchObject({ code: 1, out: "", err: "INFO nothing destroyed\n" });
      expect(declined.io.asked).toEqual([`Destroy 1 sandbox(es)? ${id}`]);
      const accepted = await call("destroy", ["--all", "-l", "suite=cli"], fakeIO({ tty: true, answers: [true] }));
      expect(accepted).toMatchObject({ code: 0, out: `${id}\n` });
    } finally {
      await destroyAll();
    }
  }, 60_000);

  test("an unknown id is a note, not a failure; --json lists it as missing", async () => {
    expect(await call("destroy", ["nope"])).toMatchObject({ code: 0, out: "", err: "WARN nope: no such sandbox (already destroyed?), nothing to destroy\n" });
    expect(JSON.parse((await call("destroy", ["nope", "--json"])).out)).toEqual({ destroyed: [], failed: [], missing: ["nope"] });
  });

  test("toOptions refuses -l without --all and ids with --all", async () => {
    await expect(call("destroy", ["x", "-l", "a=b"])).rejects.toThrow("-l selects sandboxes only together with --all");
    await expect(call("destroy", ["x", "--all"])).rejects.toThrow("give either sandbox ids or --all, not both");
  });
});

describe("cp, run and exec", () => {
  test("cp copies in and out; a success line for people, or one JSON document", async () => {
    try {
      const id = await keptSandbox("files");
      writeFileSync(join(home, "in.txt"), "payload\n");
      const up = await call("cp", [join(home, "in.txt"), "files:/tmp/in.txt"], fakeIO({ tty: true }));
      expect(up).toMatchObject({ code: 0, out: "", err: `SUCCESS copied ${join(home, "in.txt")} -> ${id}:/tmp/in.txt\n` });
      const down = await call("cp", ["files:/tmp/in.txt", join(home, "out.txt"), "--json"]);
      expect(JSON.parse(down.out)).toEqual({ direction: "download", sandbox_id: id, provider: "local", from: "/tmp/in.txt", to: join(home, "out.txt"), skipped: 0 });
      expect(await Bun.file(join(home, "out.txt")).text()).toBe("payload\n");
      await expect(call("cp", ["a", "b", "c"])).rejects.toThrow("cp takes exactly SRC and DST");
    } finally {
      await destroyAll();
    }
  }, 60_000);

  test("cp's `-`: a tar archive never goes to or comes from a terminal, and --json cannot share stdout with it", async () => {
    await expect(call("cp", ["box:/tmp/d", "-"], fakeIO({ tty: true }))).rejects.toThrow(
      "cp SRC - writes a tar archive on standard output, which is a terminal: pipe it, e.g. sandboxes cp BOX:/path - | tar -x -f -",
    );
    await expect(call("cp", ["-", "box:/tmp"], fakeIO({ tty: true }))).rejects.toThrow(
      "cp - reads a tar archive from standard input, which is a terminal: pipe one in, e.g. tar -c -f - DIR | sandboxes cp - BOX:/path",
    );
    await expect(call("cp", ["box:/tmp/d", "-", "--json"])).rejects.toThrow("cp SRC - writes the archive on standard output: --json cannot print there too");
  });

  test("run streams the program's output and passes its exit code; --json captures it", async () => {
    expect(await call("run", ["-p", "local", "echo out; echo err >&2; exit 3"])).toMatchObject({ code: 3, out: "out\n", err: "err\n" });
    const json = await call("run", ["-p", "local", "--json", "echo hi"]);
    expect(JSON.parse(json.out)).toMatchObject({ provider: "local", exitCode: 0, stdout: "hi\n", timedOut: false });
  }, 60_000);

  test("run: piped stdin is code with --lang; on a terminal there is nothing to run", async () => {
    const piped = await call("run", ["-p", "local", "--lang", "python"], fakeIO({ tty: false, stdin: "print(6 * 7)\n" }));
    expect(piped).toMatchObject({ code: 0, out: "42\n" });
    await expect(call("run", ["-p", "local"], fakeIO({ tty: true }))).rejects.toThrow("nothing to run");
    await expect(call("run", ["-p", "local"], fakeIO({ tty: false }))).rejects.toThrow("code on stdin needs --lang");
  }, 60_000);

  test("exec forwards piped stdin, not a terminal's, and keeps the program's exit code", async () => {
    try {
      await keptSandbox("target");
      expect(await call("exec", ["target", "cat; exit 4"], fakeIO({ tty: false, stdin: "fed\n" }))).toMatchObject({ code: 4, out: "fed\n" });
      expect(await call("exec", ["target", "cat"], fakeIO({ tty: true, stdin: "ignored\n" }))).toMatchObject({ code: 0, out: "" });
      await expect(call("exec", ["target"])).rejects.toThrow("missing COMMAND");
    } finally {
      await destroyAll();
    }
  }, 60_000);
});
