import { DaytonaConnectionError, DaytonaError, type Sandbox } from "@daytonaio/sdk";
import { SandboxesError } from "../../base/errors";

/**
 * One file into the sandbox through the toolbox's `POST /files/bulk-upload` (multipart, the same
 * fields as the SDK's upload), with a body that is read only as fast as the connection takes it.
 * The SDK's own streamed upload (uploadFileStream: form-data over Node's http) passes no
 * backpressure back: with a receiver slower than this machine's tar, the archive piled up in this
 * process (1.4 GB for 400 MiB in a full test run). Here fetch pulls the next chunk when it has
 * sent the last, and tar waits. Failures are the SDK's errors (a status on DaytonaError), so
 * retries and messages are as for every other call (errors.ts).
 */
export async function uploadStreamed(sandbox: Sandbox, apiKey: string | undefined, path: string, file: ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<void> {
  const boundary = `sandboxes-${crypto.randomUUID()}`;
  const encoder = new TextEncoder();
  const field = (name: string, extra = "") => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"${extra}\r\n`;
  const head = encoder.encode(`${field("files[0].path")}\r\n${path}\r\n${field("files[0].file", `; filename="${path.replaceAll('"', "%22")}"`)}Content-Type: application/octet-stream\r\n\r\n`);
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const reader = file.getReader();
  let headSent = false;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!headSent) {
          headSent = true;
          return controller.enqueue(head);
        }
        const { done, value } = await reader.read();
        if (!done) return controller.enqueue(value);
        controller.enqueue(tail);
        controller.close();
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
  const url = `${sandbox.toolboxProxyUrl.replace(/\/+$/, "")}/${sandbox.id}/files/bulk-upload`;
  let response: Response;
  // An answer that came before the whole body was taken (a refusal), or none: what is left of
  // the archive is not wanted, and its tar stops (a retry reads the archive again).
  const unread = () => reader.cancel().catch(() => {});
  try {
    response = await fetch(url, {
      method: "POST",
      body,
      duplex: "half",
      signal,
      headers: { ...(apiKey ? { Authorization: `Bearer ${apiKey}` } : {}), "Content-Type": `multipart/form-data; boundary=${boundary}` },
    } as RequestInit);
  } catch (error) {
    // What this machine could not read (the archive's own failure) is said as it is; no answer
    // (a reset, a refused connection) is the SDK's kind for it, which is retried.
    await unread();
    if (error instanceof SandboxesError) throw error;
    throw new DaytonaConnectionError(`upload failed: ${(error as Error).message}`);
  }
  if (!response.ok) {
    await unread();
    const text = (await response.text().catch(() => "")).trim();
    let message = text;
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? text;
    } catch {
      /* not JSON: the text as it is */
    }
    throw Object.assign(new DaytonaError(`${message || response.statusText} (status ${response.status})`, response.status), { headers: Object.fromEntries(response.headers) });
  }
  await response.body?.cancel();
}
