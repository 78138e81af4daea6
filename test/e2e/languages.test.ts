import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, freshEnv, requireMachine } from "../helpers";

// The runtimes these programs need, on the system PATH (a local sandbox sees /usr, not node_modules).
requireMachine({ commands: ["python3", "node", "bun", "go", "rustc", "ruby", "java", "gcc", "g++", "php", "perl", "lua5.4"] });

/** One program per language: prints its arguments and a line on stderr, exits 3. */
const PROGRAMS: Record<string, [file: string, source: string]> = {
  python: ["main.py", "import sys\nprint('py', *sys.argv[1:])\nprint('e', file=sys.stderr)\nsys.exit(3)\n"],
  javascript: ["main.js", "console.log('js', ...process.argv.slice(2)); console.error('e'); process.exit(3);\n"],
  typescript: ["main.ts", "const args: string[] = process.argv.slice(2);\nconsole.log('ts', ...args); console.error('e'); process.exit(3);\n"],
  go: ["main.go", 'package main\nimport ("fmt"; "os"; "strings")\nfunc main() { fmt.Println("go", strings.Join(os.Args[1:], " ")); fmt.Fprintln(os.Stderr, "e"); os.Exit(3) }\n'],
  rust: ["main.rs", 'fn main() { let a: Vec<String> = std::env::args().skip(1).collect(); println!("rs {}", a.join(" ")); eprintln!("e"); std::process::exit(3); }\n'],
  bash: ["main.sh", 'echo sh "$@"; echo e >&2; exit 3\n'],
  ruby: ["main.rb", "puts (['rb'] + ARGV).join(' '); $stderr.puts 'e'; exit 3\n"],
  java: ["Main.java", 'public class Main { public static void main(String[] a) { System.out.println("java " + String.join(" ", a)); System.err.println("e"); System.exit(3); } }\n'],
  c: ["main.c", '#include <stdio.h>\nint main(int c, char **v) { printf("c"); for (int i = 1; i < c; i++) printf(" %s", v[i]); printf("\\n"); fprintf(stderr, "e\\n"); return 3; }\n'],
  cpp: ["main.cpp", '#include <iostream>\nint main(int c, char **v) { std::cout << "cpp"; for (int i = 1; i < c; i++) std::cout << " " << v[i]; std::cout << std::endl; std::cerr << "e" << std::endl; return 3; }\n'],
  php: ["main.php", "<?php echo implode(' ', array_merge(['php'], array_slice($argv, 1))), \"\\n\"; fwrite(STDERR, \"e\\n\"); exit(3);\n"],
  perl: ["main.pl", 'print join(" ", "pl", @ARGV), "\\n"; print STDERR "e\\n"; exit 3;\n'],
  lua: ["main.lua", 'print("lua " .. table.concat(arg, " ")); io.stderr:write("e\\n"); os.exit(3)\n'],
};

const PREFIX: Record<string, string> = { python: "py", javascript: "js", typescript: "ts", go: "go", rust: "rs", bash: "sh", ruby: "rb", java: "java", c: "c", cpp: "cpp", php: "php", perl: "pl", lua: "lua" };

describe("languages: the file is uploaded and run, with args, stderr and exit code", () => {
  for (const [language, [file, source]] of Object.entries(PROGRAMS)) {
    test(language, async () => {
      // The real HOME, so toolchains installed under it (rustup, pyenv) are found as the user has them.
      const { env, home } = freshEnv({ HOME: process.env.HOME ?? "/root" });
      const dir = join(home === process.env.HOME ? env.XDG_STATE_HOME! : home, `lang-${language}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, file), source);
      const r = await cli(["run", "-f", join(dir, file), "--", "a", "b c"], { env });
      expect(r.stdout).toBe(`${PREFIX[language]} a b c\n`);
      expect(r.stderr).toEndWith("e\n");
      expect(r.code).toBe(3);
    }, 120_000);
  }

  test("stdin code with --lang uses the language's default file name", async () => {
    const { env } = freshEnv({ HOME: process.env.HOME ?? "/root" });
    const r = await cli(["run", "--lang", "java"], { env, stdin: PROGRAMS.java![1] });
    expect(r.stdout).toBe("java \n");
    expect(r.code).toBe(3);
  }, 120_000);

  test("a compile error is the compiler's output and exit code", async () => {
    const { env } = freshEnv({ HOME: process.env.HOME ?? "/root" });
    const r = await cli(["run", "--lang", "c"], { env, stdin: "int main( {" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error");
  });
});
