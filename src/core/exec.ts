import type { ExecOutcome } from "../providers/types";
import type { Settings } from "./config";
import { throwIfAborted } from "./lifecycle";
import { resolveSandbox } from "./resolve";
import { execSpec, type OutputSink, reportLimitHit } from "./run";
import { checkTimeoutMs } from "./timeout";
import { prepareWorkdir } from "./workdir";

/** What `sandboxes exec` asks for: a command line in an existing sandbox. */
export interface ExecRequest {
  ref: string;
  provider?: string;
  line: string;
  env: Record<string, string>;
  workdir?: string;
  timeoutMs?: number;
  stdin?: ReadableStream<Uint8Array> | Uint8Array;
  signal: AbortSignal;
}

/** What an exec reports; its output went to the OutputSink as it came. */
export interface ExecReport {
  sandboxId: string;
  provider: string;
  exitCode: number;
  timedOut: boolean;
  durationMs: number;
  limitHit?: ExecOutcome["limitHit"];
}

export async function execInSandbox(settings: Settings, request: ExecRequest, sink: OutputSink): Promise<ExecReport> {
  const started = performance.now();
  checkTimeoutMs(request.timeoutMs);
  const { provider, record } = await resolveSandbox(settings, request.ref, request.provider);
  if (request.workdir !== undefined) await prepareWorkdir(provider, record.id, request.workdir, "require", request.signal);
  throwIfAborted(request.signal);
  const outcome = await provider.exec(record.id, execSpec(["sh", "-c", request.line], request, sink, request.workdir));
  throwIfAborted(request.signal);
  reportLimitHit(outcome, sink);
  return { sandboxId: record.id, provider: provider.name, exitCode: outcome.exitCode, timedOut: outcome.timedOut, durationMs: Math.round(performance.now() - started), limitHit: outcome.limitHit };
}
