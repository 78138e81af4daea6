import type { PtyHandle, Sandbox } from "@daytonaio/sdk";
import { randomBytes } from "node:crypto";
import type { PtySession, PtySpec } from "../types";
import { quote } from "./shell";
import { PtyOutput, StartGate, startLine } from "../shared/pty";

/**
 * A terminal running `spec.argv`. Daytona's PTY starts the sandbox's login shell; we type
 * `exec ARGV` into it (see startLine) and hide what comes before.
 */
export async function openPty(sandbox: Sandbox, spec: PtySpec, retrying: (create: () => Promise<PtyHandle>) => Promise<PtyHandle>): Promise<PtySession> {
  const output = new PtyOutput();
  const gate = new StartGate(output);
  const handle = await retrying(() =>
    sandbox.process.createPty({ id: `sandboxes-pty-${randomBytes(6).toString("hex")}`, cols: spec.cols, rows: spec.rows, ...(spec.cwd ? { cwd: spec.cwd } : {}), envs: spec.env, onData: gate.push }),
  );
  await handle.sendInput(startLine(`exec ${spec.argv.map(quote).join(" ")}`));
  const exited = handle
    .wait()
    .then((result) => result.exitCode ?? 1)
    .catch(() => 1)
    .finally(() => {
      gate.end();
      void handle.disconnect();
    });
  return {
    write: (data) => void handle.sendInput(data).catch(() => {}),
    resize: (cols, rows) => void handle.resize(cols, rows).catch(() => {}),
    onData: output.onData,
    exited,
    kill: async () => {
      await handle.kill().catch(() => {});
      await Promise.race([exited, Bun.sleep(2000)]);
      await handle.disconnect();
    },
  };
}
