import { UsageError } from "../base/errors";
import { execInSandbox } from "../core/exec";
import { shellQuote } from "../base/quote";
import { defineCommand } from "../cli/command";
import { execSink, renderRunJson, reportTimeout } from "../cli/exec-output";
import { envArgs, jsonArg, maxOutputArg, parseEnv, parseMaxOutput, parseTimeoutMs, providerArg, strings, timeoutArg, workdirArg } from "../cli/args";
import { isTerminal } from "../cli/stdio";


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
  async run({ args, settings, signal }) {
    const [ref, ...rest] = args._;
    const line = [...rest, ...args["--"].map(shellQuote)].join(" ");
    if (!ref) throw new UsageError("missing_argument", "missing sandbox: sandboxes exec ID|NAME COMMAND");
    if (!line.trim()) throw new UsageError("missing_command", "missing COMMAND: sandboxes exec ID|NAME COMMAND");
    const json = Boolean(args.json);
    const sink = execSink(json, parseMaxOutput(args["max-output"], json));
    const timeoutMs = parseTimeoutMs(args.timeout);
    const result = await execInSandbox(
      settings,
      {
        ref,
        provider: args.provider as string | undefined,
        line,
        env: parseEnv(strings(args.env), settings.env),
        workdir: args.workdir as string | undefined,
        timeoutMs,
        stdin: isTerminal(0) ? undefined : (Bun.stdin.stream() as ReadableStream<Uint8Array>),
        signal,
      },
      sink,
    );
    reportTimeout(result, timeoutMs, json);
    if (json) await renderRunJson(sink, result);
    return result.exitCode;
  },
});
