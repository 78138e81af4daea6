/**
 * A stand-in Docker Engine for the setup tests (test/e2e/test-setup.test.ts): the four requests
 * scripts/ci/docker.sh makes — ping, does an image exist, import an image from a tar stream — on a
 * unix socket. Run as `dockerd -H unix://PATH` it is the engine that setup "installed" and started;
 * it writes its pid to PATH.pid so the test can stop it.
 */
import { writeFileSync } from "node:fs";

export function serveEngine(socket: string, images: Set<string> = new Set()) {
  return Bun.serve({
    unix: socket,
    async fetch(request) {
      const url = new URL(request.url);
      if (url.pathname === "/_ping") return new Response("OK");
      const image = /^\/images\/(.+)\/json$/.exec(url.pathname)?.[1];
      if (request.method === "GET" && image) return images.has(image) ? Response.json({ Id: image }) : new Response("no such image", { status: 404 });
      if (request.method === "POST" && url.pathname === "/images/create" && url.searchParams.get("fromSrc") === "-") {
        // The body is the root filesystem as a tar stream; an import that reads it all is enough here.
        await request.arrayBuffer();
        images.add(`${url.searchParams.get("repo")}:${url.searchParams.get("tag") ?? "latest"}`);
        return Response.json({ status: "imported" });
      }
      return new Response("not in this fake", { status: 404 });
    },
  });
}

if (import.meta.main) {
  const socket = /^unix:\/\/(.+)$/.exec(process.argv[process.argv.indexOf("-H") + 1] ?? "")?.[1];
  if (!socket) throw new Error("usage: dockerd -H unix://PATH");
  serveEngine(socket);
  writeFileSync(`${socket}.pid`, String(process.pid));
}
