import { ProviderError } from "../../core/errors";
import { type Engine, EngineError } from "./engine";

const PULL_HINT = "check the image name (and `docker login` for a private registry), or build/pull it yourself first";

/** "repo[:tag][@digest]" -> the query of POST /images/create; without a tag, "latest" (never all tags). */
export function pullQuery(image: string): { fromImage: string; tag?: string } {
  if (image.includes("@")) return { fromImage: image };
  const lastSlash = image.lastIndexOf("/");
  const colon = image.lastIndexOf(":");
  if (colon > lastSlash) return { fromImage: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { fromImage: image, tag: "latest" };
}

/**
 * Pulls `image`; resolves once the engine has it. The engine reports failures inside a 200
 * response as `{"error": ...}` lines, so the whole progress stream is read.
 */
export async function pullImage(engine: Engine, image: string, signal?: AbortSignal): Promise<void> {
  let response: Response;
  try {
    response = await engine.request("POST", "/images/create", { query: pullQuery(image), signal });
  } catch (error) {
    if (error instanceof EngineError) throw new ProviderError("docker", `cannot pull image ${image}: ${error.detail}`, error.httpStatus, undefined, PULL_HINT, "image_pull_failed");
    throw error;
  }
  const text = await response.text();
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let event: { error?: string; errorDetail?: { message?: string } };
    try {
      event = JSON.parse(line);
    } catch {
      continue;
    }
    const failure = event.errorDetail?.message ?? event.error;
    if (failure) throw new ProviderError("docker", `cannot pull image ${image}: ${failure}`, undefined, undefined, PULL_HINT, "image_pull_failed");
  }
}
