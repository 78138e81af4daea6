import type { OutputSink } from "../core/run";
import { printJson, writeStderr, writeStdout } from "./_output";
import { ui } from "./_ui";
import { isTerminal } from "../stdio";

export interface CapturingSink extends OutputSink {
  captured?: { stdout: Uint8Array[]; stderr: Uint8Array[] };
}

/** Live pass-through of the program's bytes, or capture for --json. */
export function execSink(json: boolean): CapturingSink {
  if (!json) {
    return {
      stdout: (c) => writeStdout(c),
      stdoutFd: 1,
      stderr: (c) => writeStderr(c),
      info: (m) => ui().info(m),
      notice: (m) => writeStderr(`sandboxes: ${m}\n`),
      progress: isTerminal(2) ? (m) => ui().info(m) : undefined,
    };
  }
  const captured = { stdout: [] as Uint8Array[], stderr: [] as Uint8Array[] };
  return { captured, stdout: (c) => void captured.stdout.push(c), stderr: (c) => void captured.stderr.push(c), info: () => {}, notice: (m) => writeStderr(`sandboxes: ${m}\n`) };
}

/**
 * stdout/stderr as UTF-8 text; when the bytes are not valid UTF-8 the text has U+FFFD in their
 * place and `stdout_base64`/`stderr_base64` carry the exact bytes.
 */
function textFields(name: "stdout" | "stderr", chunks: Uint8Array[]): Record<string, string> {
  const bytes = Buffer.concat(chunks);
  const fields: Record<string, string> = { [name]: bytes.toString("utf8") };
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    fields[`${name}_base64`] = bytes.toString("base64");
  }
  return fields;
}

export function renderRunJson(sink: CapturingSink, result: { sandboxId: string; provider: string; exitCode: number; timedOut: boolean; durationMs: number; kept?: boolean; reused?: boolean; limitHit?: string }): Promise<void> {
  return printJson({
    sandbox_id: result.sandboxId,
    provider: result.provider,
    exit_code: result.exitCode,
    ...textFields("stdout", sink.captured?.stdout ?? []),
    ...textFields("stderr", sink.captured?.stderr ?? []),
    duration_ms: result.durationMs,
    timed_out: result.timedOut,
    ...(result.limitHit ? { limit_hit: result.limitHit } : {}),
    ...(result.kept !== undefined ? { kept: result.kept } : {}),
    ...(result.reused !== undefined ? { reused: result.reused } : {}),
  });
}

/** The one line a person sees when --timeout fired (the JSON document says timed_out instead). */
export function reportTimeout(result: { timedOut: boolean }, timeoutSeconds: number | undefined, json: boolean): void {
  if (result.timedOut && !json) ui().warn(`command timed out after ${timeoutSeconds}s; its process tree was killed (exit 124)`);
}
