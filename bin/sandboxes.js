#!/usr/bin/env node
// Entry point of the npm package (`npm i -g sandboxes`, `bunx sandboxes`, `npx sandboxes`).
// sandboxes is written for Bun: under Bun this runs src/main.ts in-process; under Node it
// re-executes with Bun, or says how to get Bun or the standalone binary.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const main = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "main.ts");

function findBun() {
  const exe = process.platform === "win32" ? "bun.exe" : "bun";
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter).filter(Boolean),
    join(process.env.BUN_INSTALL ?? join(homedir(), ".bun"), "bin"),
  ];
  for (const dir of dirs) {
    const candidate = join(dir, exe);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

if (process.versions.bun) {
  await import(main);
} else {
  const bun = findBun();
  if (!bun) {
    process.stderr.write(
      "sandboxes: this package runs on Bun, which was not found on PATH or in ~/.bun/bin.\n" +
        "  install Bun:           curl -fsSL https://bun.sh/install | bash\n" +
        "  or the standalone binary (no Bun needed): see https://github.com/sandboxes-cli/sandboxes#install\n",
    );
    process.exit(125);
  }
  const child = spawn(bun, [main, ...process.argv.slice(2)], { stdio: "inherit" });
  // The child shares our terminal and gets Ctrl-C itself; forward signals sent to us alone.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  child.on("error", (error) => {
    process.stderr.write(`sandboxes: cannot start ${bun}: ${error.message}\n`);
    process.exit(125);
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      // Die of the same signal so callers see the same status as the child's.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code ?? 125);
    }
  });
}
