import { printable } from "../base/quote";
import { isUtf8Chunks, StreamCapture, type Captured } from "../core/capture";
import type { OutputSink } from "../core/run";
import { ui } from "./ui";
import { isTerminal, streamStderr, streamStdout, writeStderr } from "./stdio";

export interface CapturingSink extends OutputSink {
  captured?: { stdout: StreamCapture; stderr: StreamCapture };
}

/**
 * Live pass-through of the program's bytes, or capture for --json, at most `maxOutputBytes` per
 * stream. Streamed chunks resolve once they are out: the provider's output loop awaits them.
 */
export function execSink(json: boolean, maxOutputBytes?: number): CapturingSink {
  if (!json) {
    return {
      stdout: streamStdout,
      stdoutFd: 1,
      stderr: streamStderr,
      info: (m) => ui().info(m),
      notice: (m) => writeStderr(`sandboxes: ${printable(m)}\n`),
      progress: isTerminal(2) ? (m) => ui().info(m) : undefined,
    };
  }
  const captured = { stdout: new StreamCapture(maxOutputBytes), stderr: new StreamCapture(maxOutputBytes) };
  return { captured, stdout: (c) => captured.stdout.push(c), stderr: (c) => captured.stderr.push(c), info: () => {}, notice: (m) => writeStderr(`sandboxes: ${printable(m)}\n`) };
}

/**
 * The document is written in pieces, each field's text encoded a slice at a time: one
 * JSON.stringify of the whole document would hold the bytes, their text, the escaped text and
 * the base64 at once (a 50 MB output peaked at 1.3 GB that way). Here memory stays near the
 * captured bytes themselves. The layout is JSON.stringify(document, null, 2)'s.
 */
const SLICE = 3 * 256 * 1024; // a multiple of 3, so base64 slices join without padding inside

/** The chunks cut into pieces of at most SLICE bytes. */
function* slices(chunks: readonly Uint8Array[]): Generator<Uint8Array> {
  for (const chunk of chunks) for (let at = 0; at < chunk.length; at += SLICE) yield chunk.subarray(at, at + SLICE);
}

/**
 * The document's pieces, gathered into writes of about a slice each and awaited, so a reader that
 * stalls holds up only this (a signal still ends the run: src/stdio.ts gives up on the reader).
 */
class DocumentWriter {
  private pending = "";

  async put(text: string): Promise<void> {
    this.pending += text;
    if (this.pending.length >= SLICE) await this.flush();
  }

  async flush(): Promise<void> {
    const text = this.pending;
    this.pending = "";
    await streamStdout(text);
  }
}

async function writeText(out: DocumentWriter, chunks: readonly Uint8Array[]): Promise<void> {
  const decoder = new TextDecoder();
  await out.put('"');
  for (const slice of slices(chunks)) await out.put(JSON.stringify(decoder.decode(slice, { stream: true })).slice(1, -1));
  await out.put(JSON.stringify(decoder.decode()).slice(1, -1) + '"');
}

async function writeBase64(out: DocumentWriter, chunks: readonly Uint8Array[]): Promise<void> {
  await out.put('"');
  // Bytes left over from a slice whose length was not a multiple of 3, completed by the next.
  let rest = new Uint8Array(0);
  for (const slice of slices(chunks)) {
    const joined = rest.length ? Buffer.concat([rest, slice]) : slice;
    const whole = joined.length - (joined.length % 3);
    await out.put(Buffer.from(joined.buffer, joined.byteOffset, whole).toString("base64"));
    rest = joined.slice(whole);
  }
  await out.put(Buffer.from(rest).toString("base64") + '"');
}

type Field = readonly [string, unknown] | readonly [string, (out: DocumentWriter, chunks: readonly Uint8Array[]) => Promise<void>, readonly Uint8Array[]];

/**
 * stdout/stderr as UTF-8 text; when the bytes are not valid UTF-8 the text has U+FFFD in their
 * place and `stdout_base64`/`stderr_base64` carry the exact bytes.
 */
function textFields(name: "stdout" | "stderr", captured: Captured): Field[] {
  const fields: Field[] = [[name, writeText, captured.chunks]];
  if (!isUtf8Chunks(captured.chunks)) fields.push([`${name}_base64`, writeBase64, captured.chunks]);
  return fields;
}

export async function renderRunJson(sink: CapturingSink, result: { sandboxId: string; provider: string; exitCode: number; timedOut: boolean; durationMs: number; kept?: boolean; reused?: boolean; limitHit?: string }): Promise<void> {
  const stdout = sink.captured!.stdout.result();
  const stderr = sink.captured!.stderr.result();
  const fields: Field[] = [
    ["sandbox_id", result.sandboxId],
    ["provider", result.provider],
    ["exit_code", result.exitCode],
    ...textFields("stdout", stdout),
    ...textFields("stderr", stderr),
    ["duration_ms", result.durationMs],
    ["timed_out", result.timedOut],
    ...(result.limitHit ? [["limit_hit", result.limitHit] as const] : []),
    ["truncated", stdout.truncated || stderr.truncated],
    ["stdout_bytes", stdout.totalBytes],
    ["stderr_bytes", stderr.totalBytes],
    ["stdout_truncated", stdout.truncated],
    ["stderr_truncated", stderr.truncated],
    ...(result.kept !== undefined ? [["kept", result.kept] as const] : []),
    ...(result.reused !== undefined ? [["reused", result.reused] as const] : []),
  ];
  const out = new DocumentWriter();
  await out.put("{\n");
  for (const [index, field] of fields.entries()) {
    await out.put(`  ${JSON.stringify(field[0])}: `);
    if (field.length === 3) await field[1](out, field[2]);
    else await out.put(JSON.stringify(field[1]));
    await out.put(index < fields.length - 1 ? ",\n" : "\n");
  }
  await out.put("}\n");
  await out.flush();
}

/** The one line a person sees when --timeout fired (the JSON document says timed_out instead). */
export function reportTimeout(result: { timedOut: boolean }, timeoutMs: number | undefined, json: boolean): void {
  if (result.timedOut && !json) ui().warn(`command timed out after ${(timeoutMs ?? 0) / 1000}s; its process tree was killed (exit 124)`);
}
