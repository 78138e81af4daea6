import { describe, expect, test } from "bun:test";
import { parseEnv, parseLabels, parseMemory, parseSeconds, parseTimeoutMs, splitPair } from "../../src/cli/args";
import { closest, machineError } from "../../src/base/errors";
import { parseRemote } from "../../src/core/transfer";
import { printable } from "../../src/base/quote";
import { byExtension, byName, LANGUAGES } from "../../src/lang/languages";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { homeDir } from "../../src/base/home";
import { configDir, stateDir } from "../../src/core/config";

describe("flag values", () => {
  test("timeouts accept seconds and units, reject the rest", () => {
    expect(parseSeconds("30")).toBe(30);
    expect(parseSeconds("1.5")).toBe(1.5);
    expect(parseSeconds("2m")).toBe(120);
    expect(parseSeconds("250ms")).toBe(0.25);
    expect(parseSeconds(undefined)).toBeUndefined();
    expect(() => parseSeconds("soon")).toThrow('--timeout must be a number of seconds (e.g. 30, 1.5, 2m, 3d), got "soon"');
    expect(() => parseSeconds("0")).toThrow("--timeout must be greater than 0");
    expect(parseSeconds("3d")).toBe(3 * 86400);
  });

  test("--timeout in ms: up to 24 days, a fraction of a millisecond still counts", () => {
    expect(parseTimeoutMs("24d")).toBe(24 * 86400 * 1000);
    expect(parseTimeoutMs("0.0001")).toBe(1);
    expect(() => parseTimeoutMs("2147484")).toThrow('--timeout must be at most 24 days (2073600 seconds, or 24d), got "2147484"');
  });

  test("env: KEY=VALUE keeps later '=', KEY passes through, bad names are refused", () => {
    expect(parseEnv(["A=b=c", "PASS", "MISSING"], { PASS: "p" })).toEqual({ A: "b=c", PASS: "p" });
    expect(() => parseEnv(["=x"], {})).toThrow("empty variable name");
    expect(() => parseEnv(["1A=x"], {})).toThrow('"1A" is not a valid variable name');
  });

  test("env file: KEY=VALUE lines, quotes, comments; a name alone passes this shell's value, as docker's --env-file", () => {
    const dir = mkdtempSync(join(tmpdir(), "sandboxes-envfile-"));
    try {
      const file = join(dir, "env");
      writeFileSync(file, 'A=1\nexport B="two words"\n# comment\n\nPASS\nMISSING\nC=x=y\n');
      expect(parseEnv(["A=override"], { PASS: "from the shell" }, file)).toEqual({ A: "override", B: "two words", PASS: "from the shell", C: "x=y" });
      writeFileSync(file, "A=1\n=bad\n");
      expect(() => parseEnv([], {}, file)).toThrow(`${file}:2: expected KEY=VALUE or KEY, got "=bad"`);
      writeFileSync(file, "1A\n");
      expect(() => parseEnv([], {}, file)).toThrow(`${file}:1: expected KEY=VALUE or KEY, got "1A"`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("labels must be key=value and may not use our prefix", () => {
    expect(parseLabels(["a=1", "b="])).toEqual({ a: "1", b: "" });
    expect(() => parseLabels(["novalue"])).toThrow('label "novalue" must be key=value');
    expect(() => parseLabels(["sandboxes.x=1"])).toThrow("reserved");
  });

  test("memory sizes", () => {
    expect(parseMemory("512m")).toBe(512);
    expect(parseMemory("2g")).toBe(2048);
    expect(() => parseMemory("lots")).toThrow("--memory must look like 512m or 2g");
  });

  test("LOCAL:REMOTE pairs", () => {
    expect(splitPair("a/b.txt:/tmp/x", "--upload", () => "d")).toEqual({ first: "a/b.txt", second: "/tmp/x" });
    expect(splitPair("a/b.txt", "--upload", () => "/tmp/b.txt")).toEqual({ first: "a/b.txt", second: "/tmp/b.txt" });
  });

  test("remote paths in cp", () => {
    expect(parseRemote("box:/tmp/a")).toEqual({ ref: "box", path: "/tmp/a" });
    expect(parseRemote("./box:/tmp")).toBeUndefined();
    expect(parseRemote("/abs/path")).toBeUndefined();
    expect(parseRemote("C:\\dir", "win32")).toBeUndefined();
    expect(parseRemote("c:/dir", "win32")).toBeUndefined();
    // Elsewhere a letter before the colon is a sandbox's one-letter name (`run -n q` makes one).
    expect(parseRemote("q:/tmp/a", "linux")).toEqual({ ref: "q", path: "/tmp/a" });
    expect(parseRemote("C:\\dir", "darwin")).toEqual({ ref: "C", path: "\\dir" });
    // A path may hold any character a file name can, a newline and a colon too.
    expect(parseRemote("box:/tmp/a\nb: c")).toEqual({ ref: "box", path: "/tmp/a\nb: c" });
  });

  test("text a sandbox chose, as a terminal shows it: every control as an escape, newlines kept only when asked", () => {
    expect(printable("a\x1b]0;t\x07b\x1b[2J\r\t\x7f\x9bc\u202ed\u2066e\nf")).toBe("a\\x1b]0;t\\x07b\\x1b[2J\\r\\t\\x7f\\x9bc\\u202ed\\u2066e\\nf");
    expect(printable("one\ntwo\x1b", { lines: true })).toBe("one\ntwo\\x1b");
    expect(printable("plain: ünïcode, 日本, emoji 🙂")).toBe("plain: ünïcode, 日本, emoji 🙂");
  });

  test("did-you-mean", () => {
    expect(closest("lcoal", ["local", "docker"])).toBe("local");
    expect(closest("zzzzzz", ["local", "docker"])).toBeUndefined();
  });
});

describe("language table", () => {
  test("every extension maps to exactly one language", () => {
    const seen = new Map<string, string>();
    for (const language of LANGUAGES) {
      for (const extension of language.extensions) {
        expect(seen.get(extension)).toBeUndefined();
        seen.set(extension, language.name);
      }
    }
    expect(byExtension(".py")?.name).toBe("python");
    expect(byExtension(".R")?.name).toBe("r");
    expect(byName("Python")?.name).toBe("python");
    expect(byName("golang")?.name).toBe("go");
  });
});

describe("the home and the XDG directories: absolute paths only", () => {
  test("a relative or empty HOME gives /etc/passwd's home; relative XDG variables are ignored", () => {
    const own = readFileSync("/etc/passwd", "utf8").split("\n").map((line) => line.split(":")).find((fields) => fields[2] === String(process.getuid?.()))![5]!;
    expect(homeDir({ HOME: "/somewhere/else" })).toBe("/somewhere/else");
    expect(homeDir({ HOME: "relative" })).toBe(own);
    expect(homeDir({ HOME: "" })).toBe(own);
    expect(homeDir({})).toBe(own);
    expect(stateDir({ HOME: "/h", XDG_STATE_HOME: "/s" })).toBe("/s/sandboxes");
    expect(stateDir({ HOME: "/h", XDG_STATE_HOME: "s" })).toBe("/h/.local/state/sandboxes");
    expect(configDir({ HOME: "/h", XDG_CONFIG_HOME: "c" })).toBe("/h/.config/sandboxes");
    expect(configDir({ HOME: "relative", XDG_CONFIG_HOME: "" })).toBe(`${own}/.config/sandboxes`);
  });
});

describe("errors the machine causes", () => {
  const systemError = (code: string, syscall: string, path: string) => Object.assign(new Error(`${code}: ${syscall} '${path}'`), { code, syscall, path });
  test("a failed system call on a path is named, with the state directory's hint when it is there", () => {
    expect(machineError(systemError("EACCES", "mkdir", "/s/sandboxes/local"), "/s/sandboxes")).toMatchObject({
      code: "file_system",
      message: "cannot make /s/sandboxes/local: permission denied",
      hint: "sandboxes keeps its state in /s/sandboxes: make that writable, or set XDG_STATE_HOME to a directory that is",
    });
    // A parent of the state directory, and a path elsewhere (no hint).
    expect(machineError(systemError("EROFS", "mkdir", "/s"), "/s/sandboxes")?.hint).toContain("XDG_STATE_HOME");
    expect(machineError(systemError("ENOSPC", "write", "/home/me/out.txt"), "/s/sandboxes")).toMatchObject({ message: "cannot write /home/me/out.txt: no space left on the device", hint: undefined });
    // Not the machine's: a missing file, an error without a path, anything else.
    expect(machineError(systemError("ENOENT", "open", "/x"))).toBeUndefined();
    expect(machineError(Object.assign(new Error("EACCES"), { code: "EACCES" }))).toBeUndefined();
    expect(machineError("EACCES")).toBeUndefined();
  });
});
