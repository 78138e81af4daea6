/**
 * The hidden entry points the local provider spawns (src/main.ts dispatches them before the
 * command registry loads):
 *
 *   sandboxes __egress-proxy SOCKET [--allow ENTRY]... [--blocked-log FILE]
 *   sandboxes __egress-bridge PORT|stdin SOCKET [PID]
 *
 * `stdin` instead of a port: standard input is a TCP socket that already listens (inetd's wait
 * mode), handed over by the waiter sandbox-start leaves in the sandbox (sandbox-start.c).
 * PID: a one-shot sandbox's program, which the bridge does not outlive (see serveUntilSignal).
 *
 * Each prints one line on stdout once it listens ("listening SOCKET", "listening PORT"), then
 * serves until SIGTERM, SIGINT or SIGHUP (or PID's end), and exits 0 after closing. A bad
 * argument prints one line on stderr and exits 2. The proxy appends one JSON line (a
 * BlockedEvent) per blocked destination to the --blocked-log file.
 */
import { appendFileSync, writeSync } from "node:fs";

// Straight to the descriptors: creating Node's process.stdout or process.stderr stream would cost
// these processes more start-up time than the rest of what they load.
function fail(message: string): number {
  writeSync(2, `sandboxes: ${message}\n`);
  return 2;
}

/** How often a bridge checks that the program it serves still runs. */
const PROGRAM_CHECK_MS = 1000;

/**
 * Serves until a signal, or until process `whilePid` is gone. A one-shot sandbox ends when bwrap's
 * pid 1 gets its parent-death signal, which bwrap sets only a moment after it starts: a CLI killed
 * just then leaves pid 1 to wait for every process of the sandbox, and a bridge that waited for
 * connections for ever would keep the sandbox (and its mounts) alive after its program ended.
 */
async function serveUntilSignal(close: () => Promise<void>, whilePid?: number): Promise<number> {
  await new Promise<void>((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.once(signal, () => resolve());
    if (whilePid !== undefined) setInterval(() => isRunning(whilePid) || resolve(), PROGRAM_CHECK_MS).unref();
  });
  await close();
  return 0;
}

/** Whether process `pid` still exists (one of another user, such as a shell as root before it drops to the sandbox's user, does). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

async function proxy(args: string[]): Promise<number> {
  const socketPath = args[0];
  if (!socketPath || socketPath.startsWith("--")) return fail("usage: sandboxes __egress-proxy SOCKET [--allow ENTRY]... [--blocked-log FILE]");
  const allow: string[] = [];
  let blockedLog: string | undefined;
  for (let i = 1; i < args.length; i += 2) {
    const value = args[i + 1];
    if (value === undefined) return fail(`${args[i]} needs a value`);
    if (args[i] === "--allow") allow.push(value);
    else if (args[i] === "--blocked-log") blockedLog = value;
    else return fail(`unknown argument ${args[i]} for __egress-proxy`);
  }
  const { startEgressProxy } = await import("./proxy");
  const { AllowEntryError } = await import("./policy");
  let server;
  try {
    server = await startEgressProxy({
      listen: { socketPath },
      allow,
      onBlocked: (event) => {
        if (blockedLog) appendFileSync(blockedLog, `${JSON.stringify(event)}\n`);
      },
    });
  } catch (error) {
    if (error instanceof AllowEntryError) return fail(error.message);
    return fail(`cannot listen on ${socketPath}: ${(error as Error).message}`);
  }
  writeSync(1, `listening ${socketPath}\n`);
  return await serveUntilSignal(server.close);
}

async function bridge(args: string[]): Promise<number> {
  const [portText, socketPath, pidText] = args;
  const onStdin = portText === "stdin";
  const usable = (args.length === 2 || (args.length === 3 && /^[1-9]\d{0,9}$/.test(pidText!))) && (onStdin || (/^\d{1,5}$/.test(portText!) && Number(portText) <= 65535));
  if (!usable) return fail("usage: sandboxes __egress-bridge PORT|stdin SOCKET [PID]");
  const { startBridge } = await import("./bridge");
  let server;
  try {
    server = await startBridge({ ...(onStdin ? { fd: 0 } : { port: Number(portText) }), socketPath: socketPath! });
  } catch (error) {
    return fail(`cannot listen on ${onStdin ? "the socket on stdin" : `127.0.0.1:${portText}`}: ${(error as Error).message}`);
  }
  writeSync(1, `listening ${server.port}\n`);
  return await serveUntilSignal(server.close, pidText === undefined ? undefined : Number(pidText));
}

export async function runHiddenEntry(name: string, args: string[]): Promise<number> {
  return name === "__egress-proxy" ? await proxy(args) : await bridge(args);
}
