import type { PtyHandle, Sandbox } from "@daytonaio/sdk";
import { randomBytes } from "node:crypto";
import type { PtySession, PtySpec } from "../types";
import { quote } from "./shell";

/**
 * A terminal running `spec.argv`. Daytona's PTY starts the sandbox's login shell; we type
 * `exec ARGV` into it and hide everything up to a marker that only the command's own output can
 * contain (the echoed line shows the escape sequence as text, not the bytes).
 */
export async function openPty(sandbox: Sandbox, spec: PtySpec, retrying: (create: () => Promise<PtyHandle>) => Promise<PtyHandle>): Promise<PtySession> {
  const listeners: Array<(chunk: Uint8Array) => void> = [];
  const marker = "\x1e\x1esandboxes\x1e\x1e";
  let pending = "";
  let started = false;
  const deliver = (chunk: Uint8Array) => {
    for (const listener of listeners) listener(chunk);
  };
  const onData = (chunk: Uint8Array) => {
    if (started) return deliver(chunk);
    pending += Buffer.from(chunk).toString("latin1");
    const at = pending.indexOf(marker);
    if (at === -1) return;
    started = true;
    const rest = pending.slice(at + marker.length);
    pending = "";
    if (rest) deliver(Buffer.from(rest, "latin1"));
  };
  const handle = await retrying(() =>
    sandbox.process.createPty({ id: `sandboxes-pty-${randomBytes(6).toString("hex")}`, cols: spec.cols, rows: spec.rows, ...(spec.cwd ? { cwd: spec.cwd } : {}), envs: spec.env, onData }),
  );
  const program = spec.argv.map(quote).join(" ");
  // The leading space keeps the line out of bash's history (HISTCONTROL=ignorespace).
  await handle.sendInput(` printf '\\036\\036sandboxes\\036\\036'; exec ${program}\n`);
  const exited = handle
    .wait()
    .then((result) => result.exitCode ?? 1)
    .catch(() => 1)
    .finally(() => {
      // Nothing matched the marker: show what arrived rather than swallow it.
      if (!started && pending) deliver(Buffer.from(pending, "latin1"));
      void handle.disconnect();
    });
  return {
    write: (data) => void handle.sendInput(data).catch(() => {}),
    resize: (cols, rows) => void handle.resize(cols, rows).catch(() => {}),
    onData: (listener) => void listeners.push(listener),
    exited,
    kill: async () => {
      await handle.kill().catch(() => {});
      await Promise.race([exited, Bun.sleep(2000)]);
      await handle.disconnect();
    },
  };
}
