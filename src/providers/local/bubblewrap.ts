// Its own module so the descriptor (and with it `sandboxes providers`) can ask without loading
// isolation.ts, which needs node:fs and node:path.

/** The caller's PATH first, then the system directories (a trimmed PATH must not hide it). */
export function bubblewrapPath(env: Record<string, string | undefined>): string | undefined {
  if (env.SANDBOXES_LOCAL_ISOLATION === "unshare") return undefined;
  return Bun.which("bwrap", { PATH: `${env.PATH ?? ""}:/usr/bin:/bin` }) ?? undefined;
}
