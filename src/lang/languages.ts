/**
 * The language table: extension -> how the uploaded source file runs. One entry per language;
 * adding a language means adding a row here (and a test case in test/e2e/languages.test.ts).
 *
 * `run` is a POSIX sh script executed as `sh -c SCRIPT sandboxes-run ARGS…` in the directory
 * that holds the uploaded file; "$F" is the file's name and "$@" the program's arguments.
 * `needs` lists the executables that must exist in the sandbox (any one of each group).
 */
export interface Language {
  name: string;
  aliases: string[];
  extensions: string[];
  needs: string[][];
  run: string;
  /** Dependency manifests beside the file and how to install them with --deps (first match wins). */
  deps?: Array<{ manifest: string; install: string; run?: string; env?: Record<string, string> }>;
}

export const LANGUAGES: readonly Language[] = [
  {
    name: "python",
    aliases: ["py", "python3"],
    extensions: [".py"],
    needs: [["python3"]],
    run: 'exec python3 "$F" "$@"',
    deps: [
      {
        manifest: "requirements.txt",
        install: "python3 -m pip install --quiet --disable-pip-version-check --target .sandboxes-deps -r requirements.txt",
        env: { PYTHONPATH: ".sandboxes-deps" },
      },
    ],
  },
  {
    name: "javascript",
    aliases: ["js", "node"],
    extensions: [".js", ".mjs", ".cjs"],
    needs: [["node"]],
    run: 'exec node "$F" "$@"',
    deps: [{ manifest: "package.json", install: "npm install --no-audit --no-fund --loglevel=error" }],
  },
  {
    name: "typescript",
    aliases: ["ts"],
    extensions: [".ts", ".mts", ".cts"],
    needs: [["bun", "tsx", "node"]],
    // Whichever the sandbox has: bun, tsx, or node's own type stripping (Node 22.6+).
    run: 'if command -v bun >/dev/null 2>&1; then exec bun "$F" "$@"; elif command -v tsx >/dev/null 2>&1; then exec tsx "$F" "$@"; else exec node --experimental-strip-types --no-warnings "$F" "$@"; fi',
    deps: [{ manifest: "package.json", install: "if command -v bun >/dev/null 2>&1; then bun install --silent; else npm install --no-audit --no-fund --loglevel=error; fi" }],
  },
  {
    name: "go",
    aliases: ["golang"],
    extensions: [".go"],
    needs: [["go"]],
    // Build then run: `go run` prints "exit status N" and exits 1 instead of the program's code.
    run: 'B="${TMPDIR:-/tmp}/sandboxes-go-$$"; go build -o "$B" "$F" || exit $?; "$B" "$@"; s=$?; rm -f "$B"; exit $s',
    deps: [{ manifest: "go.mod", install: "go mod download", run: 'B="${TMPDIR:-/tmp}/sandboxes-go-$$"; go build -o "$B" . || exit $?; "$B" "$@"; s=$?; rm -f "$B"; exit $s' }],
  },
  {
    name: "rust",
    aliases: ["rs"],
    extensions: [".rs"],
    needs: [["rustc"]],
    run: 'B="${TMPDIR:-/tmp}/sandboxes-rust-$$"; rustc --edition 2021 -o "$B" "$F" || exit $?; "$B" "$@"; s=$?; rm -f "$B"; exit $s',
    deps: [{ manifest: "Cargo.toml", install: "cargo fetch --quiet", run: 'exec cargo run --quiet -- "$@"' }],
  },
  { name: "bash", aliases: ["sh", "shell"], extensions: [".sh", ".bash"], needs: [["bash"]], run: 'exec bash "$F" "$@"' },
  { name: "ruby", aliases: ["rb"], extensions: [".rb"], needs: [["ruby"]], run: 'exec ruby "$F" "$@"', deps: [{ manifest: "Gemfile", install: "bundle install --quiet", run: 'exec bundle exec ruby "$F" "$@"' }] },
  { name: "java", aliases: [], extensions: [".java"], needs: [["java"]], run: 'exec java "$F" "$@"' },
  {
    name: "c",
    aliases: [],
    extensions: [".c"],
    needs: [["cc"]],
    run: 'B="${TMPDIR:-/tmp}/sandboxes-c-$$"; cc -O2 -o "$B" "$F" -lm || exit $?; "$B" "$@"; s=$?; rm -f "$B"; exit $s',
  },
  {
    name: "cpp",
    aliases: ["c++", "cxx"],
    extensions: [".cpp", ".cc", ".cxx"],
    needs: [["c++"]],
    run: 'B="${TMPDIR:-/tmp}/sandboxes-cpp-$$"; c++ -O2 -o "$B" "$F" || exit $?; "$B" "$@"; s=$?; rm -f "$B"; exit $s',
  },
  { name: "php", aliases: [], extensions: [".php"], needs: [["php"]], run: 'exec php "$F" "$@"' },
  { name: "perl", aliases: ["pl"], extensions: [".pl"], needs: [["perl"]], run: 'exec perl "$F" "$@"' },
  { name: "lua", aliases: [], extensions: [".lua"], needs: [["lua", "lua5.4", "lua5.3", "luajit"]], run: 'L=$(command -v lua || command -v lua5.4 || command -v lua5.3 || command -v luajit); exec "$L" "$F" "$@"' },
  { name: "r", aliases: ["R"], extensions: [".R", ".r"], needs: [["Rscript"]], run: 'exec Rscript "$F" "$@"' },
];

export function languageNames(): string[] {
  return LANGUAGES.map((l) => l.name);
}

export function byName(name: string): Language | undefined {
  const lower = name.toLowerCase();
  return LANGUAGES.find((l) => l.name === lower || l.aliases.map((a) => a.toLowerCase()).includes(lower));
}

export function byExtension(extension: string): Language | undefined {
  return LANGUAGES.find((l) => l.extensions.includes(extension)) ?? LANGUAGES.find((l) => l.extensions.includes(extension.toLowerCase()));
}

/** The default file name for code that came from stdin. */
export function defaultFileName(language: Language): string {
  if (language.name === "java") return "Main.java";
  return `main${language.extensions[0]}`;
}
