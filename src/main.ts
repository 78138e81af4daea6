#!/usr/bin/env bun
/**
 * The only place that parses argv, maps errors to exit codes, and exits.
 *
 * Parsing is strict and our own (src/cli/argv.ts, driven by each command's flag table): a repeated
 * flag keeps every value (-e A -e B), an unknown flag is refused, and no error reaches the user as
 * a raw stack. CONTRIBUTING.md says why no argument-parsing library does this here.
 */
import type { AnyCommand } from "./cli/command";
import type { SandboxesError } from "./base/errors";

const argv = process.argv.slice(2);
// The release binary starts with a reluctant JIT (START_UP_JIT_POLICY in scripts/build-binaries.ts):
// start-up code runs once, and compiling it would cost every command milliseconds. What still
// runs after this long is the long work (output pumping, the egress proxy or bridge, a terminal,
// the MCP server), for which the JIT is worth its cost again.
setTimeout(() => Bun.unsafe.setJITPolicy(1), 50).unref();
// Internal processes the local provider spawns: not commands, so not in help or completion.
// Dispatched before anything else is imported (hence no static imports above but types), so
// they start like a hello-world.
if (argv[0] === "__egress-proxy" || argv[0] === "__egress-bridge") {
  const { runHiddenEntry } = await import("./providers/local/egress/entry");
  process.exit(await runHiddenEntry(argv[0], argv.slice(1)));
}
// --version and the top-level help (quickAnswer) load nothing more: cli/stdio costs them node:fs.
// Anything else loads what every command needs, and its command's module, all at once: each
// dynamic import awaited in turn would be a turn of the event loop.
const VERSION_ASKED = ["--version", "-v", "version"];
const HELP_ASKED = ["--help", "-h"];
const quickAsked = argv[0] === undefined || VERSION_ASKED.includes(argv[0]) || HELP_ASKED.includes(argv[0]);
const registryLoading = import("./cli/registry");
// Read first, while the modules load: the process's first file read through Bun starts its I/O
// threads, milliseconds that loading the command's modules then hides. Its errors wait for their
// turn in main(), after those of the command line.
const settingsLoading = quickAsked ? undefined : import("./core/config").then((m) => m.loadSettings());
settingsLoading?.catch(() => {});
const loadCommand = async (name: string): Promise<AnyCommand | undefined> => {
  const { COMMANDS, isCommandName } = await registryLoading;
  return isCommandName(name) ? (await COMMANDS[name]()).default : undefined;
};
const [{ COMMANDS, isCommandName }, { parseCommandArgs }, { closest, InterruptedError, isSandboxesError, machineError, UsageError }, { printable }, { EXIT, exitForStop }, stdioLoaded, commandLoaded, ioLoaded] =
  await Promise.all([
    registryLoading,
    import("./cli/parse"),
    import("./base/errors"),
    import("./base/quote"),
    import("./core/exit-codes"),
    quickAsked ? undefined : import("./cli/stdio"),
    quickAsked ? undefined : loadCommand(argv[0]!),
    quickAsked ? undefined : import("./cli/io"),
  ]);
let stdio: typeof import("./cli/stdio");

/**
 * --version and the top-level help, answered before anything else loads. They write with
 * Bun.write rather than process.stdout: creating Node's stdout stream costs more than the rest
 * of start-up (see bench/startup.ts). Returns undefined for everything else.
 */
async function quickAnswer(first: string | undefined): Promise<number | undefined> {
  if (first !== undefined && VERSION_ASKED.includes(first)) {
    const { VERSION } = await import("./cli/help-text");
    await Bun.write(Bun.stdout, `${VERSION}\n`);
    return EXIT.ok;
  }
  if (first === undefined || HELP_ASKED.includes(first)) {
    const { topLevelHelp } = await import("./cli/help-text");
    await Bun.write(first === undefined ? Bun.stderr : Bun.stdout, topLevelHelp());
    return first === undefined ? EXIT.usage : EXIT.ok;
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const first = argv[0]!;
  if (first.startsWith("-")) {
    return reportError(new UsageError("unknown_flag", `unknown flag ${first} before the command: see sandboxes --help`), false, false);
  }
  if (!isCommandName(first)) {
    const suggestion = closest(first, Object.keys(COMMANDS));
    return reportError(new UsageError("unknown_command", `unknown command "${first}"${suggestion ? `; did you mean "${suggestion}"?` : ""} (see sandboxes --help)`), false, false);
  }
  const command: AnyCommand = commandLoaded ?? (await COMMANDS[first]()).default;
  const { processIO } = ioLoaded ?? (await import("./cli/io"));
  const rest = argv.slice(1);
  const dashIndex = rest.indexOf("--");
  const json = (dashIndex === -1 ? rest : rest.slice(0, dashIndex)).includes("--json");
  if (rest.includes("--help") || rest.includes("-h")) {
    const dashDash = rest.indexOf("--");
    const helpIndex = Math.max(rest.indexOf("--help"), rest.indexOf("-h"));
    if (dashDash === -1 || helpIndex < dashDash) {
      const { commandHelp } = await import("./cli/help-text");
      await stdio.emitStdout((await commandHelp(first))!);
      return EXIT.ok;
    }
  }
  const controller = new AbortController();
  let stoppedAt = 0;
  const onSignal = (signal: "SIGINT" | "SIGTERM" | "SIGHUP") => () => {
    if (!controller.signal.aborted) {
      stoppedAt = performance.now();
      controller.abort(signal);
      return;
    }
    // A repeat does not cut the clean-up short: `timeout` and terminals signal our whole process
    // group as well as us, so one kill often arrives twice. Only Ctrl-C pressed again, a second
    // later, leaves at once (and may leave the sandbox behind).
    if (signal === "SIGINT" && performance.now() - stoppedAt >= 1000) {
      stdio.writeStderr("sandboxes: interrupted again: exiting without cleaning up\n");
      process.exit(EXIT.sigint);
    }
  };
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, handler] of handlers) process.on(signal, handler);
  stdio.brokenPipe.onStdoutClosed = () => controller.abort("SIGPIPE");
  controller.signal.addEventListener("abort", () => stdio.stopWaitingForReaders(), { once: true });
  try {
    const args = parseCommandArgs(command, rest);
    const [settings, io] = await Promise.all([settingsLoading ?? import("./core/config").then((m) => m.loadSettings()), processIO(command)]);
    stateDir = settings.stateDir;
    const options = command.toOptions(args, { vars: settings.env, stdinIsTTY: io.stdin.isTTY });
    const code = await command.run(options, { io, settings, signal: controller.signal });
    if (controller.signal.aborted) {
      // The signal came as the command ended (the program, in our process group, may have died of
      // it first): clean-up ran all the same; say so, unless a --json document already went out
      // (whole: a reader that stalled got only part of it).
      if (!json || stdio.stdoutDropped()) reportError(new InterruptedError(controller.signal.reason), false, !!command.runsPrograms);
      return exitForStop(controller.signal.reason);
    }
    return code;
  } catch (error) {
    if (controller.signal.aborted && !(error instanceof UsageError)) {
      return reportError(new InterruptedError(controller.signal.reason), json && !!command.args.json && !stdio.stdoutDropped(), !!command.runsPrograms);
    }
    return reportError(error, json && !!command.args.json, !!command.runsPrograms);
  } finally {
    // Only commands that can reach a provider load the provider table at all.
    if ("provider" in command.args) {
      const { closeProviders } = await import("./core/select");
      await closeProviders();
    }
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}


/** Waits for consola's lines on process.stderr, if anything created that stream at all. */
async function flushHumanMessages(): Promise<void> {
  if (!stdio.humanOutput.used) return;
  process.stderr.on("error", () => {});
  await new Promise<void>((resolve) => process.stderr.write("", () => resolve()));
}

/** The state directory, once the settings are read: an error on a path inside it says so. */
let stateDir: string | undefined;

function reportError(error: unknown, json: boolean, runsPrograms: boolean): number {
  const known = isSandboxesError(error) ? error : machineError(error, stateDir);
  const code = known ? exitCodeFor(known, runsPrograms) : runsPrograms ? EXIT.sandboxesFailure : EXIT.failure;
  // Like any program whose reader went away: no message, just 141.
  if (known instanceof InterruptedError && known.signal === "SIGPIPE") return code;
  const message = known ? known.message : `internal error: ${(error as Error)?.message ?? String(error)}`;
  try {
    writeReport(error, known, message, code, json && known?.code !== "stdout_failed");
  } catch {
    // stderr cannot be written either: the exit code is all that is left.
  }
  return code;
}

/** The error as one line on stderr, or as the JSON document (unless stdout itself failed). */
function writeReport(error: unknown, known: SandboxesError | undefined, message: string, code: number, json: boolean): void {
  if (json) {
    stdio.writeStdout(JSON.stringify({ error: { code: known?.code ?? "internal_error", message, ...(known?.hint ? { hint: known.hint } : {}), exit_code: code } }, null, 2) + "\n");
  } else {
    // One line, whatever the message quotes (a sandbox's file name, a provider's answer).
    stdio.writeStderr(`sandboxes: ${printable(`${message}${known?.hint ? `: ${known.hint}` : ""}`)}\n`);
    if (!known || process.env.SANDBOXES_DEBUG || process.env.DEBUG) {
      if (error instanceof Error && error.stack && (process.env.SANDBOXES_DEBUG || process.env.DEBUG)) stdio.writeStderr(`${error.stack}\n`);
      else if (!known) stdio.writeStderr("  this is a bug in sandboxes: rerun with SANDBOXES_DEBUG=1 for details and report it\n");
    }
  }
}

function exitCodeFor(error: SandboxesError, runsPrograms: boolean): number {
  if (error instanceof InterruptedError) return exitForStop(error.signal);
  if (runsPrograms) return EXIT.sandboxesFailure;
  return error.kind === "usage" ? EXIT.usage : EXIT.failure;
}

const quick = await quickAnswer(argv[0]);
if (quick !== undefined) process.exit(quick);
stdio = stdioLoaded ?? (await import("./cli/stdio"));
const code = await main(argv);
// What is still queued for a slow reader (cli/stdio.ts), and consola's human lines in Node's
// stderr stream.
await stdio.drainOutput();
await flushHumanMessages();
process.exit(code);
