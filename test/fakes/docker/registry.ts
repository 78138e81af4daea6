/**
 * A fake image registry on 127.0.0.1 (the Registry HTTP API v2, read-only, no auth), serving
 * an image the local engine already has, so pulls can be tested without any real registry.
 * The engine treats 127.0.0.0/8 as an insecure registry and speaks plain HTTP to it.
 */
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

export interface FakeRegistry {
  /** "127.0.0.1:PORT" */
  host: string;
  /** Requests seen, e.g. "GET /v2/sbx/app/manifests/v1". */
  requests: string[];
  stop(): void;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/**
 * Serves `source` (an image in the engine behind `socket`) as every repository:tag asked for,
 * plus one small layer of its own that no engine has yet, so a pull really downloads a blob.
 * Repositories whose name contains "absent" answer "manifest unknown".
 */
export async function startFakeRegistry(socket: string, source: string): Promise<FakeRegistry> {
  const saved = await fetch(`http://docker/images/${source}/get`, { unix: socket } as RequestInit);
  if (!saved.ok) throw new Error(`cannot export ${source} from the engine: ${saved.status}`);
  const files = await new Bun.Archive(new Uint8Array(await saved.arrayBuffer())).files();
  const read = async (path: string) => new Uint8Array(await files.get(path)!.arrayBuffer());
  const [entry] = JSON.parse(new TextDecoder().decode(await read("manifest.json"))) as Array<{ Config: string; Layers: string[] }>;
  const fresh = await new Bun.Archive({ "etc/fake-registry": `served at ${Date.now()} ${Math.random()}\n` }).bytes();
  const sourceConfig = JSON.parse(new TextDecoder().decode(await read(entry!.Config))) as { rootfs: { diff_ids: string[] } };
  sourceConfig.rootfs.diff_ids.push(sha256(fresh));
  const config = new TextEncoder().encode(JSON.stringify(sourceConfig));
  const layers = [...(await Promise.all(entry!.Layers.map(async (path) => gzipSync(await read(path))))), gzipSync(fresh)];
  const blobs = new Map<string, Uint8Array>([[sha256(config), config], ...layers.map((layer) => [sha256(layer), layer] as [string, Uint8Array])]);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.docker.distribution.manifest.v2+json",
    config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: sha256(config) },
    layers: layers.map((layer) => ({ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: layer.length, digest: sha256(layer) })),
  });
  const requests: string[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const path = new URL(request.url).pathname;
      requests.push(`${request.method} ${path}`);
      const head = request.method === "HEAD";
      if (path === "/v2/" || path === "/v2") return new Response("{}", { headers: { "content-type": "application/json", "docker-distribution-api-version": "registry/2.0" } });
      const manifestMatch = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
      if (manifestMatch) {
        if (manifestMatch[1]!.includes("absent")) return new Response(JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }] }), { status: 404 });
        return new Response(head ? null : manifest, {
          headers: { "content-type": "application/vnd.docker.distribution.manifest.v2+json", "docker-content-digest": sha256(new TextEncoder().encode(manifest)), "content-length": String(manifest.length) },
        });
      }
      const blobMatch = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path);
      const blob = blobMatch ? blobs.get(blobMatch[1]!) : undefined;
      if (blob) return new Response(head ? null : (blob as unknown as BodyInit), { headers: { "content-type": "application/octet-stream", "docker-content-digest": blobMatch![1]!, "content-length": String(blob.length) } });
      return new Response(JSON.stringify({ errors: [{ code: "NOT_FOUND", message: path }] }), { status: 404 });
    },
  });
  return { host: `127.0.0.1:${server.port}`, requests, stop: () => server.stop(true) };
}
