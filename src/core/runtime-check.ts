/**
 * Whether a sandbox has a language's runtime, asked before the program runs, so that a missing
 * one is one clear line (exit 125) and not the shell's "not found" (127). Asked in a kept
 * sandbox through a probe of its own (checkRuntime), or in the program's own one-shot sandbox,
 * just before the program (InlineRuntimeCheck): one sandbox instead of two.
 */
import { SandboxesError } from "../base/errors";
import type { Language } from "../lang/languages";

/** Asks with `ask` (the script's exit code and stdout) whether the runtime is there; throws if not. */
export async function checkRuntime(ask: (script: string) => Promise<{ code: number; stdout: string }>, language: Language, image?: string): Promise<void> {
  const script = language.needs.map((group) => `{ ${group.map((exe) => `command -v ${exe} >/dev/null 2>&1`).join(" || ")} || echo ${group.join("/")}; }`).join("; ");
  const { code, stdout } = await ask(script);
  const missing = stdout.trim();
  if (code !== 0 || missing) throw missingRuntime(missing || language.needs.flat().join("/"), language, image);
}

function missingRuntime(missing: string, language: Language, image: string | undefined): SandboxesError {
  return new SandboxesError(
    "missing_runtime",
    `${missing} is not installed in this sandbox${image ? ` (image ${image})` : ""}, so ${language.name} cannot run: pass --image with one that has it`,
    "user",
  );
}

/** How much of stderr may come before the check's line (a shell's warnings) before it is taken for absent. */
const MAX_BEFORE_ANSWER = 64 * 1024;

/**
 * The runtime check of a program that runs in its own one-shot sandbox. `script` goes first in
 * the program's shell: it writes one line to stderr before the program starts, "NONCE ok", or
 * "NONCE missing NAMES" and then exits 125, the program never having run. `stderr` passes the
 * program's stderr on without that line; `verdict` throws missing_runtime if it said so.
 */
export class InlineRuntimeCheck {
  readonly script: string;
  private readonly nonce = `sandboxes-runtime-${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex")}`;
  /** stderr held back until the check's line has passed: a partial line; undefined after. */
  private held: Uint8Array | undefined = new Uint8Array(0);
  /** How much stderr came before the check's line. */
  private before = 0;
  private missing: string | undefined;

  constructor(
    private readonly language: Language,
    private readonly image: string | undefined,
  ) {
    const answer = (text: string) => `echo '${this.nonce} ${text}' >&2`;
    const groups = language.needs.map((group) => `{ ${group.map((exe) => `command -v ${exe}`).join(" || ")}; } >/dev/null 2>&1 || { ${answer(`missing ${group.join("/")}`)}; exit 125; }`);
    this.script = `${[...groups, answer("ok")].join("; ")}; `;
  }

  /** `forward` behind a filter that takes the check's line off the stream. */
  stderr(forward: (chunk: Uint8Array) => unknown): (chunk: Uint8Array) => unknown {
    return (chunk) => {
      if (this.held === undefined) return forward(chunk);
      let rest = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
      const before: Uint8Array[] = [];
      for (let end = rest.indexOf(0x0a); end !== -1; end = rest.indexOf(0x0a)) {
        const line = new TextDecoder().decode(rest.subarray(0, end));
        if (line.startsWith(`${this.nonce} `)) {
          const answer = line.slice(this.nonce.length + 1);
          if (answer.startsWith("missing ")) this.missing = answer.slice("missing ".length);
          this.held = undefined;
          return passOn(forward, [...before, rest.subarray(end + 1)]);
        }
        // Before the program: the shell's own warnings, say. Theirs to see.
        before.push(rest.subarray(0, end + 1));
        rest = rest.subarray(end + 1);
      }
      this.before += chunk.length;
      if (this.before > MAX_BEFORE_ANSWER) {
        this.held = undefined;
        return passOn(forward, [...before, rest]);
      }
      this.held = Uint8Array.from(rest);
      return passOn(forward, before);
    };
  }

  /** Passes on what is still held back: stderr of a sandbox that ended before the check spoke. */
  flush(forward: (chunk: Uint8Array) => unknown): unknown {
    const held = this.held;
    this.held = undefined;
    return held?.length ? forward(held) : undefined;
  }

  /** Throws missing_runtime when the check found the runtime missing. */
  verdict(): void {
    if (this.missing !== undefined) throw missingRuntime(this.missing, this.language, this.image);
  }
}

function passOn(forward: (chunk: Uint8Array) => unknown, parts: Uint8Array[]): unknown {
  const nonEmpty = parts.filter((part) => part.length > 0);
  if (nonEmpty.length === 0) return undefined;
  return forward(nonEmpty.length === 1 ? nonEmpty[0]! : Buffer.concat(nonEmpty));
}
