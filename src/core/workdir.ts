import type { Provider } from "../providers/types";
import { SandboxesError } from "../base/errors";
import { shellQuote } from "../base/quote";

/**
 * `-w DIR` means the same on every provider. Left to them, a missing directory is exit 126 on
 * Docker, 127 on Modal, 2 on Daytona, 125 from env(1) locally and an SDK error on E2B, each with
 * its own message. So: in a sandbox that this command creates, DIR is created (as `docker run -w`
 * does); in an existing one it must be there already (as with `docker exec -w`), and if it is
 * not, that is one line and exit 125 like any other failure of sandboxes itself.
 */
export async function prepareWorkdir(provider: Provider, id: string, dir: string, mode: "create" | "require", signal?: AbortSignal): Promise<void> {
  const errors: Uint8Array[] = [];
  const script = mode === "create" ? 'mkdir -p -- "$1"' : 'test -d "$1"';
  const outcome = await provider.exec(id, { argv: ["sh", "-c", script, "sh", dir], env: {}, onStdout: () => {}, onStderr: (chunk) => errors.push(chunk), signal });
  if (signal?.aborted || outcome.exitCode === 0) return;
  if (mode === "require") {
    throw new SandboxesError(
      "workdir_not_found",
      `working directory ${dir} does not exist in sandbox ${id}`,
      "user",
      // Quoted twice, for the shell the user pastes it into and for the one in the sandbox: a
      // directory named `$(…)` must run nothing in either.
      `create it with \`sandboxes exec ${id} ${shellQuote(`mkdir -p ${shellQuote(dir)}`)}\`, or choose another -w`,
    );
  }
  const detail = Buffer.concat(errors).toString("utf8").trim().split("\n").pop()?.replace(/^mkdir: /, "");
  throw new SandboxesError("workdir_failed", `cannot create working directory ${dir} in sandbox ${id}${detail ? `: ${detail}` : ""}`, "user");
}
