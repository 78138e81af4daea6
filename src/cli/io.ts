import type { CapturingSink } from "./exec-output";
import type { AnyCommand } from "./command";
import { emitStdout, isTerminal, streamStdout, writeStderr } from "./stdio";

/** Human messages, all on stderr. */
export type Messages = Record<"info" | "success" | "warn" | "error", (message: string) => void>;

/** The result fields of a run or exec that its --json document carries (exec-output.ts). */
export type ProgramResult = Parameters<typeof import("./exec-output").renderRunJson>[1];

/** How a program's own output reaches the user: live, or captured for its --json document. */
export interface ProgramOutput {
  sink(json: boolean, maxOutputBytes?: number): CapturingSink;
  printJson(sink: CapturingSink, result: ProgramResult): Promise<void>;
  reportTimeout(result: { timedOut: boolean }, timeoutMs: number | undefined, json: boolean): void;
}

/**
 * Everything a command's run() reads from or writes to, as gh's IOStreams: the process's streams
 * in main.ts, a fake that captures them in tests (test/cli/_io.ts). stdout is data, stderr is
 * for people.
 */
export interface IO {
  stdin: { readonly isTTY: boolean; stream(): ReadableStream<Uint8Array> };
  /** emit: a whole document; write: bytes as they come, resolving once they are out (the reader's pace). */
  stdout: { readonly isTTY: boolean; emit(text: string): Promise<void>; write(chunk: Uint8Array): Promise<void> };
  stderr: { readonly isTTY: boolean; write(text: string): void };
  ui(): Messages;
  /** A yes/no question on the terminal; false when the person declines or cancels. */
  confirm(message: string, initialValue: boolean): Promise<boolean>;
  program: ProgramOutput;
}

const missing = (what: string) => (): never => {
  throw new Error(`bug: this command's IO has no ${what}`);
};

/**
 * The IO of this process. Message and program-output modules are loaded only for commands that
 * use them: consola's chunk costs start-up that `providers` must not pay (bench/startup.ts).
 */
export async function processIO(command: AnyCommand): Promise<IO> {
  // Both at once: each dynamic import is a turn of the event loop.
  const [messages, output] = await Promise.all([command.printsDataOnly ? undefined : import("./ui"), command.runsPrograms ? import("./exec-output") : undefined]);
  const ui = messages ? messages.ui : missing("messages");
  const program: ProgramOutput = output
    ? { sink: output.execSink, printJson: output.renderRunJson, reportTimeout: output.reportTimeout }
    : { sink: missing("program output"), printJson: missing("program output"), reportTimeout: missing("program output") };
  return {
    stdin: {
      get isTTY() {
        return isTerminal(0);
      },
      stream: () => Bun.stdin.stream() as ReadableStream<Uint8Array>,
    },
    stdout: {
      get isTTY() {
        return isTerminal(1);
      },
      emit: emitStdout,
      write: streamStdout,
    },
    stderr: {
      get isTTY() {
        return isTerminal(2);
      },
      write: writeStderr,
    },
    ui,
    async confirm(message, initialValue) {
      const { confirm, isCancel } = await import("@clack/prompts");
      const answer = await confirm({ message, initialValue });
      return !isCancel(answer) && answer;
    },
    program,
  };
}
