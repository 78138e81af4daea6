/**
 * Splits the engine's multiplexed exec stream (no TTY) into stdout and stderr. Each frame is an
 * 8-byte header [stream, 0, 0, 0, size as uint32 big-endian] followed by `size` bytes; frames
 * may arrive split across socket reads or several in one read.
 */
export class Demultiplexer {
  private buffered: Uint8Array = new Uint8Array(0);

  constructor(
    private readonly onStdout: (chunk: Uint8Array) => unknown,
    private readonly onStderr: (chunk: Uint8Array) => unknown,
  ) {}

  /** Resolves once the sinks have taken the chunk's frames, when a sink returned a promise for one. */
  push(chunk: Uint8Array): Promise<unknown> | undefined {
    let data = this.buffered.length ? concat(this.buffered, chunk) : chunk;
    const taking: Promise<unknown>[] = [];
    while (data.length >= 8) {
      const size = ((data[4]! << 24) >>> 0) + (data[5]! << 16) + (data[6]! << 8) + data[7]!;
      if (data.length < 8 + size) break;
      const payload = data.subarray(8, 8 + size);
      // 0 is stdin echoed back and 1 stdout; 2 is stderr and 3 the engine's own error text.
      const taken = payload.length ? (data[0] === 2 || data[0] === 3 ? this.onStderr : this.onStdout)(payload.slice()) : undefined;
      if (taken instanceof Promise) taking.push(taken);
      data = data.subarray(8 + size);
    }
    this.buffered = data.slice();
    return taking.length ? Promise.all(taking) : undefined;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a, 0);
  joined.set(b, a.length);
  return joined;
}
