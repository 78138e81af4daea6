import { ProviderError } from "../../base/errors";
import { type Engine, EngineError } from "./engine";

const PULL_HINT = "check the image name (and `docker login` then `docker pull` for a private registry)";
const PROGRESS_EVERY_MS = 250;

/** "repo[:tag][@digest]" -> the query of POST /images/create; without a tag, "latest" (never all tags). */
export function pullQuery(image: string): { fromImage: string; tag?: string } {
  if (image.includes("@")) return { fromImage: image };
  const lastSlash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon > lastSlash) return { fromImage: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { fromImage: image, tag: "latest" };
}

interface PullEvent {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

/** Folds the engine's per-layer pull events into one line: "pulling IMAGE: 3/5 layers, 12.1/40.3 MB". */
export class PullProgress {
  private readonly layers = new Map<string, { current: number; total: number; done: boolean }>();

  constructor(private readonly image: string) {}

  feed(event: PullEvent): void {
    if (!event.id || !event.status) return;
    const layer = this.layers.get(event.id) ?? { current: 0, total: 0, done: false };
    if (event.status === "Downloading" && event.progressDetail?.total) {
      layer.current = event.progressDetail.current ?? layer.current;
      layer.total = event.progressDetail.total;
    } else if (/^(Download complete|Pull complete|Already exists)$/.test(event.status)) {
      layer.current = layer.total;
      layer.done = true;
    } else if (!/^(Pulling fs layer|Waiting|Verifying Checksum|Extracting)$/.test(event.status)) {
      return; // "Pulling from library/x", digests, "Status: …": not layers.
    }
    this.layers.set(event.id, layer);
  }

  /** undefined until the engine has named a layer. */
  line(): string | undefined {
    const layers = [...this.layers.values()];
    if (layers.length === 0) return undefined;
    const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
    const current = layers.reduce((sum, l) => sum + l.current, 0);
    const total = layers.reduce((sum, l) => sum + l.total, 0);
    const done = layers.filter((l) => l.done).length;
    return `pulling ${this.image}: ${done}/${layers.length} layers${total ? `, ${mb(current)}/${mb(total)} MB` : ""}`;
  }
}

/**
 * Pulls `image`; resolves once the engine has it. The engine reports failures inside a 200
 * response as `{"error": ...}` lines, so the whole progress stream is read, line by line.
 */
export async function pullImage(engine: Engine, image: string, signal?: AbortSignal, onProgress?: (message: string) => void): Promise<void> {
  let response: Response;
  try {
    response = await engine.request("POST", "/images/create", { query: pullQuery(image), signal });
  } catch (error) {
    if (error instanceof EngineError) throw new ProviderError("docker", `cannot pull image ${image}: ${error.detail}`, error.httpStatus, undefined, PULL_HINT, "image_pull_failed");
    throw error;
  }
  const progress = new PullProgress(image);
  let lastReport = 0;
  onProgress?.(`pulling ${image}…`);
  const decoder = new TextDecoder();
  let pending = "";
  const handle = (line: string) => {
    if (!line.trim()) return;
    let event: PullEvent;
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    const failure = event.errorDetail?.message ?? event.error;
    if (failure) throw new ProviderError("docker", `cannot pull image ${image}: ${failure}`, undefined, undefined, PULL_HINT, "image_pull_failed");
    progress.feed(event);
    const report = onProgress && Date.now() - lastReport >= PROGRESS_EVERY_MS ? progress.line() : undefined;
    if (report) {
      lastReport = Date.now();
      onProgress!(report);
    }
  };
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) handle(line);
  }
  handle(pending + decoder.decode());
  onProgress?.(`pulled ${image}`);
}
