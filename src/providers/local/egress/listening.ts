import type { Server } from "node:net";

/** Resolves once `server` listens (`listen` calls its listen() with the callback given), or rejects with its error. */
export function listening(server: Server, listen: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    listen(() => {
      server.off("error", reject);
      resolve();
    });
  });
}
