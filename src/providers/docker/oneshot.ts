import { ProviderError } from "../../base/errors";
import type { Engine } from "./engine";

export interface ExitWatch {
  /** Resolves once the engine is watching: only then may the container start. */
  ready: Promise<unknown>;
  /** The container's exit code (128+N when a signal killed it). */
  code: Promise<number>;
}

interface EngineEvent {
  Action?: string;
  Actor?: { Attributes?: Record<string, string> };
}

/**
 * Watches a container that has not started yet for its exit, two ways at once: its `die`
 * event (sent as soon as the engine learns of the exit) and the wait endpoint (which answers
 * only after the engine has also torn down the container's network). The first to answer
 * wins; the wait alone would do, the event is just earlier by tens of milliseconds.
 * `since` replays what the engine sent before our subscription took hold, so no exit is missed.
 */
export function watchExit(engine: Engine, id: string, signal: AbortSignal): ExitWatch {
  const waiting = engine.request("POST", `/containers/${id}/wait`, { query: { condition: "next-exit" }, signal });
  const filters = JSON.stringify({ type: ["container"], container: [id], event: ["die"] });
  const events = engine.request("GET", "/events", { query: { since: 1, filters }, signal });
  const fromWait = waiting.then(async (response) => {
    const body = (await response.json()) as { StatusCode: number; Error?: { Message?: string } | null };
    if (body.Error?.Message) throw new ProviderError("docker", `waiting for container ${id}: ${body.Error.Message}`);
    return body.StatusCode;
  });
  const fromEvent = events.then((response) => dieExitCode(response));
  const code = Promise.any([fromEvent, fromWait]).catch((error: AggregateError) => {
    throw error.errors.find((e) => !(e instanceof Error && e.name === "AbortError")) ?? error.errors[0];
  });
  // A run that fails before it needs the code must not leave a rejection unhandled.
  code.catch(() => {});
  // Some engines (Podman) may not filter events alike: the wait is enough on its own.
  return { ready: Promise.all([waiting, events.catch(() => undefined)]), code };
}

async function dieExitCode(response: Response): Promise<number> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.trim()) continue;
      const event = JSON.parse(line) as EngineEvent;
      const code = event.Action === "die" ? Number(event.Actor?.Attributes?.exitCode) : NaN;
      if (Number.isInteger(code)) return code;
    }
  }
  throw new ProviderError("docker", "the engine's event stream ended before the container's exit");
}
