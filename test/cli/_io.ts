/**
 * A fake IO for calling commands in-process, as gh's iostreams.Test(): captured stdout and
 * stderr, chosen TTY facts, scripted confirmation answers, and program output kept in memory.
 */
import { StreamCapture } from "../../src/core/capture";
import { parseCommandArgs } from "../../src/cli/parse";
import { loadSettings } from "../../src/core/config";
import type { AnyCommand } from "../../src/cli/command";
import type { CapturingSink } from "../../src/cli/exec-output";
import type { IO, Messages } from "../../src/cli/io";

export interface FakeIO extends IO {
  out(): string;
  err(): string;
  /** Questions asked through confirm(). */
  asked: string[];
}

export function fakeIO(options: { tty: boolean; stdin?: string; answers?: boolean[] }): FakeIO {
  let out = "";
  let err = "";
  const asked: string[] = [];
  const answers = [...(options.answers ?? [])];
  const stdinBytes = new TextEncoder().encode(options.stdin ?? "");
  const text = (chunk: Uint8Array | string) => (typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk));
  const say = (level: string) => (message: unknown) => void (err += `${level} ${String(message)}\n`);
  const messages = { info: say("INFO"), success: say("SUCCESS"), warn: say("WARN"), error: say("ERROR") } as unknown as Messages;
  return {
    stdin: { isTTY: options.tty, stream: () => new Blob([stdinBytes]).stream() },
    stdout: { isTTY: options.tty, emit: async (t) => void (out += t), write: async (c) => void (out += text(c)) },
    stderr: { isTTY: options.tty, write: (t) => void (err += t) },
    ui: () => messages,
    async confirm(message) {
      asked.push(message);
      return answers.shift() ?? false;
    },
    program: {
      sink(json): CapturingSink {
        if (!json) {
          return {
            stdout: (c) => void (out += text(c)),
            stderr: (c) => void (err += text(c)),
            info: say("INFO"),
            notice: (m) => void (err += `sandboxes: ${m}\n`),
            progress: options.tty ? say("PROGRESS") : undefined,
          };
        }
        const captured = { stdout: new StreamCapture(), stderr: new StreamCapture() };
        return { captured, stdout: (c) => captured.stdout.push(c), stderr: (c) => captured.stderr.push(c), info: () => {}, notice: () => {} };
      },
      async printJson(sink, result) {
        const decode = (capture: StreamCapture) => new TextDecoder().decode(Buffer.concat(capture.result().chunks));
        out += JSON.stringify({ ...result, stdout: decode(sink.captured!.stdout), stderr: decode(sink.captured!.stderr) }) + "\n";
      },
      reportTimeout: (result, timeoutMs, json) => {
        if (result.timedOut && !json) messages.warn(`timed out after ${timeoutMs}ms`);
      },
    },
    out: () => out,
    err: () => err,
    asked,
  };
}

/** Parses argv against the command's table, then toOptions and run, as main.ts does, in this process. */
export async function runInProcess(command: AnyCommand, argv: string[], io: IO, env: Record<string, string>): Promise<number> {
  const settings = await loadSettings(env);
  const options = command.toOptions(parseCommandArgs(command, argv), { vars: settings.env, stdinIsTTY: io.stdin.isTTY });
  return command.run(options, { io, settings, signal: new AbortController().signal });
}
