/** Shared by providers whose stdin goes over as separate messages (E2B SendInput, Hopx files, Sprites frames). */

/**
 * Feeds stdin to a command in order, at most `chunkSize` bytes per `send`. `finished` stops the
 * feeding once the command is over, even if our stdin never ends (a stream is cancelled then).
 * Resolves when everything was sent or the command finished; the caller then sends the EOF.
 */
export async function feedInChunks(
  stdin: Uint8Array | ReadableStream<Uint8Array>,
  chunkSize: number,
  finished: AbortSignal,
  send: (chunk: Uint8Array) => Promise<unknown>,
): Promise<void> {
  const sendAll = async (bytes: Uint8Array) => {
    for (let offset = 0; offset < bytes.length && !finished.aborted; offset += chunkSize) await send(bytes.subarray(offset, offset + chunkSize));
  };
  if (stdin instanceof Uint8Array) return sendAll(stdin);
  const reader = stdin.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  finished.addEventListener("abort", cancel, { once: true });
  try {
    for (let next = await reader.read(); !next.done && !finished.aborted; next = await reader.read()) await sendAll(next.value);
  } finally {
    finished.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}
