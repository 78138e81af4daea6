import type { ExecOutcome } from "../providers/types";
import type { Settings } from "./config";
import { InterruptedError, type StopReason } from "../base/errors";
import { resolveSandbox } from "./resolve";
import { execSpec, type OutputSink, reportLimitHit } from "./run";
import { checkTimeoutMs } from "./timeout";
import { prepareWorkdir } from "./workdir";

export interface ExecOptions {
  ref: string;
  provider?: string;
  line: string;
  env: Record<string, string>;
  workdir?: string;
  timeoutMs?: number;
  stdin?: ReadableStream<Uint8Array> | Uint8Array;
  signal: AbortSignal;
}

export interface ExecResult {
  sandboxId: string;
  provider: string;
  exitCode: number;
  timedOut: boolean;
  durationMs: number;
  limitHit?: ExecOutcome["limitHit"];
}

export async function execInSandbox(settings: Settings, options: ExecOptions, sink: OutputSink): Promise<ExecResult> {
  const started = performance.now();
  checkTimeoutMs(options.timeoutMs);
  const { provider, record } = await resolveSandbox(settings, options.ref, options.provider);
  if (options.workdir !== undefined) await prepareWorkdir(provider, record.id, options.workdir, "require", options.signal);
  if (options.signal.aborted) throw new InterruptedError((options.signal.reason as StopReason) ?? "SIGINT");
  const outcome = await provider.exec(record.id, execSpec(["sh", "-c", options.line], options, sink, options.workdir));
  if (options.signal.aborted) throw new InterruptedError((options.signal.reason as StopReason) ?? "SIGINT");
  reportLimitHit(outcome, sink);
  return { sandboxId: record.id, provider: provider.name, exitCode: outcome.exitCode, timedOut: outcome.timedOut, durationMs: Math.round(performance.now() - started), limitHit: outcome.limitHit };
}
