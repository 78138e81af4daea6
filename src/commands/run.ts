import { existsSync } from "node:fs";
import { basename } from "node:path";
import { UsageError } from "../base/errors";
import { shellQuote } from "../base/quote";
import { networkPolicy } from "../core/network";
import { checkFile, languageFor, readCode, runCode, type CodeSource, type RunReport } from "../core/run";
import { byName, type Language } from "../lang/languages";
import { defineCommand } from "../cli/command";
import {
  envArgs, jsonArg, labelArg, networkArgs, parseCount, parseEnv, parseLabels, parseMemory, parsePositiveNumber, parseSeconds, parseTimeoutMs, providerArg,
  splitPair, timeoutArg, workdirArg, maxOutputArg, parseMaxOutput,
} from "../cli/args";

/** Where the code comes from; code on stdin is read by run(), not by the pure toOptions. */
type SourceSpec = Exclude<CodeSource, { kind: "stdin" }> | { kind: "stdin"; language: Language };

export default defineCommand({
  meta: {
    name: "run",
    description: "Run a command, a file or code from stdin in a new (or reused) sandbox",
    usage: "sandboxes run [COMMAND] [flags] [-- ARGS…]",
    examples: [
      "sandboxes run 'echo hello'",
      "sandboxes run --file main.py -- arg1 arg2",
      "cat main.go | sandboxes run --lang go",
      "sandboxes run -p docker --image python:3.12 'python3 --version'",
    ],
  },
  runsPrograms: true,
  args: {
    command: { type: "positional", description: "Shell command line to run", required: false },
    file: { type: "string", alias: "f", description: "Run this file; the language comes from its extension (or --lang)", valueHint: "path" },
    lang: { type: "string", description: "Language of --file or of code on stdin (python, go, rust, …)", valueHint: "language" },
    ...providerArg,
    image: { type: "string", alias: "i", description: "Image or template for the sandbox", valueHint: "image" },
    ...envArgs,
    "env-file": { type: "string", description: "Read KEY=VALUE lines from a file (KEY alone passes this shell's value)", valueHint: "path" },
    ...labelArg,
    name: { type: "string", alias: "n", description: "Name the sandbox (letters, digits, _ . and -, starting with a letter or digit)", valueHint: "name" },
    reuse: { type: "boolean", description: "Run in the sandbox with this --name/--label if there is one, running or a stopped local one, which it starts again (never destroyed by run)" },
    keep: { type: "boolean", description: "Keep the sandbox after the run and print its id to stderr" },
    ...timeoutArg,
    ...workdirArg,
    deps: { type: "boolean", description: "Install dependencies from the manifest beside the file (go.mod, package.json, requirements.txt, Cargo.toml)" },
    upload: { type: "string", multiple: true, description: "Copy LOCAL (file or directory) to REMOTE before running", valueHint: "LOCAL[:REMOTE]" },
    download: { type: "string", multiple: true, description: "Copy REMOTE to LOCAL after the run", valueHint: "REMOTE[:LOCAL]" },
    ...networkArgs,
    cpus: { type: "string", description: "CPUs for the sandbox (providers with resources)", valueHint: "n" },
    memory: { type: "string", description: "Memory for the sandbox, e.g. 512m, 2g", valueHint: "size" },
    pids: { type: "string", description: "Most processes and threads in the sandbox (local default: 2048)", valueHint: "n" },
    ttl: { type: "string", description: "Lifetime of a kept sandbox, in seconds (providers with ttl)", valueHint: "seconds" },
    ...jsonArg,
    ...maxOutputArg,
  },
  toOptions(args, env) {
    const json = args.json;
    const commandLine = args._.join(" ");
    const { file, lang } = args;
    let source: SourceSpec;
    let programArgs = args["--"];
    if (file !== undefined) {
      if (commandLine) throw new UsageError("conflicting_arguments", "give either a COMMAND or --file, not both (arguments for the program go after --)");
      checkFile(file);
      source = { kind: "file", path: file, language: languageFor(file, lang) };
    } else if (commandLine || (programArgs.length > 0 && !lang)) {
      if (lang) throw new UsageError("conflicting_arguments", "--lang applies to --file or to code on stdin, not to a COMMAND");
      // `run -- prog arg…` (no COMMAND): the words after -- are the command itself, as with docker.
      source = { kind: "command", line: commandLine || programArgs.map(shellQuote).join(" ") };
      if (!commandLine) programArgs = [];
    } else if (!env.stdinIsTTY) {
      if (!lang) throw new UsageError("missing_language", "code on stdin needs --lang (e.g. `cat main.go | sandboxes run --lang go`)");
      source = { kind: "stdin", language: byName(lang) ?? languageFor("stdin", lang) };
    } else {
      throw new UsageError("missing_command", "nothing to run: pass a COMMAND, --file PATH, or pipe code with --lang");
    }
    const network = networkPolicy(args.network, args["allow-net"]);
    const uploads = args.upload.map((spec) => {
      const { first, second } = splitPair(spec, "--upload", (local) => `/tmp/${basename(local)}`);
      if (!existsSync(first)) throw new UsageError("file_not_found", `--upload: ${first}: no such file or directory`);
      return { local: first, remote: second };
    });
    const downloads = args.download.map((spec) => {
      const { first, second } = splitPair(spec, "--download", (remote) => basename(remote));
      return { remote: first, local: second };
    });
    const timeoutMs = parseTimeoutMs(args.timeout);
    const ttl = parseSeconds(args.ttl, "--ttl");
    const maxOutputBytes = parseMaxOutput(args["max-output"], json);
    return {
      json,
      maxOutputBytes,
      provider: args.provider,
      image: args.image,
      env: parseEnv(args.env, env.vars, args["env-file"]),
      labels: parseLabels(args.label),
      name: args.name,
      reuse: args.reuse,
      keep: args.keep,
      timeoutMs,
      workdir: args.workdir,
      deps: args.deps,
      uploads,
      downloads,
      source,
      args: programArgs,
      network,
      cpus: parsePositiveNumber(args.cpus, "--cpus"),
      memoryMb: parseMemory(args.memory),
      pids: parseCount(args.pids, "--pids"),
      ttlSeconds: ttl,
    };
  },
  async run({ json, maxOutputBytes, source: spec, ...rest }, { io, settings, signal }) {
    let source: CodeSource;
    if (spec.kind === "stdin") {
      const code = await readCode(io.stdin.stream(), "the code on stdin");
      if (new TextDecoder().decode(code).trim() === "") throw new UsageError("empty_stdin", "no code on stdin: pipe a program in, or pass a COMMAND or --file");
      source = { kind: "stdin", code, language: spec.language };
    } else {
      source = spec;
    }
    const sink = io.program.sink(json, maxOutputBytes);
    const options = {
      ...rest,
      source,
      // Forward our stdin to the program when it is a pipe or file (not a terminal, not the code).
      stdin: source.kind !== "stdin" && !io.stdin.isTTY ? io.stdin.stream() : undefined,
      signal,
    };
    const result: RunReport = await runCode(settings, options, sink);
    io.program.reportTimeout(result, options.timeoutMs, json);
    if (json) await io.program.printJson(sink, result);
    return result.exitCode;
  },
});
