/**
 * The few libc calls Bun has no API for, through bun:ffi, loaded on first use (its load and
 * TinyCC's compile of the bindings cost a millisecond or so, which most commands never pay):
 * setns and sockets for a listener inside a sandbox's network namespace (listeners.ts), poll to
 * see a connection wait on it, the handover of a listener made inside (accept4, getsockopt,
 * read, write, and pidfd_open and pidfd_getfd through syscall: glibc before 2.36 and musl name
 * no wrapper for them), and prlimit for a sandbox's rlimits (limits.ts).
 */

export type Libc = {
  setns(fd: number, type: number): number;
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, address: Uint8Array, length: number): number;
  listen(fd: number, backlog: number): number;
  close(fd: number): number;
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  accept4(fd: number, flags: number): number;
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, length: Uint8Array): number;
  read(fd: number, buffer: Uint8Array, count: number): number;
  write(fd: number, buffer: Uint8Array, count: number): number;
  /** syscall(2) with up to three integer arguments. */
  syscall(number: number, a: number, b: number, c: number): number;
  /** prlimit(2) setting `limit` (struct rlimit: soft and hard, 64-bit each) without reading the old one. */
  prlimit(pid: number, resource: number, limit: Uint8Array): number;
  errno(): number;
};

let libc: Libc | undefined;
let loading: Promise<Libc> | undefined;

/** libc once loaded; undefined before (connectionWaiting needs the listener's). */
export function loadedLibc(): Libc | undefined {
  return libc;
}

/** libc, loaded by the first call (callers at once share that load). */
export function loadLibc(): Promise<Libc> {
  return (loading ??= load());
}

/**
 * Where libc is: glibc's soname, else musl's (our musl builds, e.g. on Alpine), which is its
 * dynamic loader too.
 */
export function libcNames(arch = process.arch): string[] {
  const musl = arch === "arm64" ? "aarch64" : "x86_64";
  return ["libc.so.6", `libc.musl-${musl}.so.1`, `/lib/ld-musl-${musl}.so.1`];
}

async function load(): Promise<Libc> {
  const { dlopen, FFIType, read } = await import("bun:ffi");
  const { i32, i64, ptr, u32, u64 } = FFIType;
  const open = (name: string) =>
    dlopen(name, {
      setns: { args: [i32, i32], returns: i32 },
      socket: { args: [i32, i32, i32], returns: i32 },
      bind: { args: [i32, ptr, u32], returns: i32 },
      listen: { args: [i32, i32], returns: i32 },
      close: { args: [i32], returns: i32 },
      poll: { args: [ptr, u32, i32], returns: i32 },
      accept4: { args: [i32, ptr, ptr, i32], returns: i32 },
      getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
      read: { args: [i32, ptr, u64], returns: i64 },
      write: { args: [i32, ptr, u64], returns: i64 },
      syscall: { args: [i64, i64, i64, i64], returns: i64 },
      prlimit: { args: [i32, i32, ptr, ptr], returns: i32 },
      __errno_location: { args: [], returns: ptr },
    });
  let failure: unknown;
  let lib: ReturnType<typeof open> | undefined;
  for (const name of libcNames()) {
    try {
      lib = open(name);
      break;
    } catch (error) {
      failure ??= error;
    }
  }
  if (!lib) throw new Error(`cannot load libc (${libcNames().join(", ")}): ${(failure as Error).message}`);
  const { symbols } = lib;
  libc = {
    setns: (fd, type) => symbols.setns(fd, type),
    socket: (domain, type, protocol) => symbols.socket(domain, type, protocol),
    bind: (fd, address, length) => symbols.bind(fd, address, length),
    listen: (fd, backlog) => symbols.listen(fd, backlog),
    close: (fd) => symbols.close(fd),
    poll: (fds, count, timeoutMs) => symbols.poll(fds, count, timeoutMs),
    accept4: (fd, flags) => symbols.accept4(fd, null, null, flags),
    getsockopt: (fd, level, name, value, length) => symbols.getsockopt(fd, level, name, value, length),
    read: (fd, buffer, count) => Number(symbols.read(fd, buffer, count)),
    write: (fd, buffer, count) => Number(symbols.write(fd, buffer, count)),
    syscall: (number, a, b, c) => Number(symbols.syscall(number, a, b, c)),
    prlimit: (pid, resource, limit) => symbols.prlimit(pid, resource, limit, null),
    errno: () => read.i32(symbols.__errno_location()!, 0),
  };
  return libc;
}
