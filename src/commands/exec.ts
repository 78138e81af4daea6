import { UsageError } from "../base/errors";
import { execInSandbox } from "../core/exec";
import { shellQuote } from "../base/quote";
import { defineCommand } from "../cli/command";
import { envArgs, jsonArg, maxOutputArg, parseEnv, parseMaxOutput, parseTimeoutMs, providerArg, timeoutArg, workdirArg } from "../cli/args";

export default defineCommand({
  meta: {
    name: "exec",
    description: "Run a command in an existing sandbox",
    usage: "sandboxes exec ID|NAME COMMAND [flags] [-- ARGS…]",
    examples: ["sandboxes exec my-box 'ls -la /tmp'", "sandboxes exec local-1a2b3c4d5e6f -t 5 -- python3 -c 'print(1)'"],
  },
  runsPrograms: true,
  args: {
    sandbox: { type: "positional", description: "Sandbox id or name", required: true },
    command: { type: "positional", description: "Shell command line", required: false },
    ...providerArg,
    ...envArgs,
    ...workdirArg,
    ...timeoutArg,
    ...jsonArg,
    ...maxOutputArg,
  },
  toOptions(args, env) {
    const [ref, ...rest] = args._;
    const line = [...rest, ...args["--"].map(shellQuote)].join(" ");
    if (!ref) throw new UsageError("missing_argument", "missing sandbox: sandboxes exec ID|NAME COMMAND");
    if (!line.trim()) throw new UsageError("missing_command", "missing COMMAND: sandboxes exec ID|NAME COMMAND");
    return {
      ref,
      line,
      provider: args.provider,
      json: args.json,
      maxOutputBytes: parseMaxOutput(args["max-output"], args.json),
      timeoutMs: parseTimeoutMs(args.timeout),
      env: parseEnv(args.env, env.vars),
      workdir: args.workdir,
    };
  },
  async run({ json, maxOutputBytes, ...options }, { io, settings, signal }) {
    const sink = io.program.sink(json, maxOutputBytes);
    const result = await execInSandbox(settings, { ...options, stdin: io.stdin.isTTY ? undefined : io.stdin.stream(), signal }, sink);
    io.program.reportTimeout(result, options.timeoutMs, json);
    if (json) await io.program.printJson(sink, result);
    return result.exitCode;
  },
});
