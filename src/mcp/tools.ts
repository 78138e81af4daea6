/**
 * The tools an agent sees: schemas, descriptions written for a model, and handlers that turn
 * every failure into one line with isError, so a bad call never ends the session.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import * as z from "zod";
import { extname } from "node:path";
import { isSandboxesError, machineError, SandboxesError } from "../base/errors";
import { byExtension, byName, languageNames, type Language } from "../lang/languages";
import { LABEL_PREFIX } from "../providers/types";
import { listAll, readFile, runInFreshSandbox, runInSandbox, writeFile, type Program } from "./core";
import type { Session } from "./session";
import { MAX_TIMEOUT_MS } from "../core/timeout";
import { isUtf8Chunks, StreamCapture } from "../core/capture";
import { dict } from "../base/keys";

/** Per stream, for run: more would flood the model's context; the rest is counted, not kept. */
export const OUTPUT_CAP = 1024 * 1024;
/** For write_file and read_file (decoded bytes): files larger than this move in parts. */
export const FILE_LIMIT = 5 * 1024 * 1024;

const labelsSchema = z
  .record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.\-/]*$/, "label keys are letters, digits, _ . - /").refine((key) => !key.startsWith(LABEL_PREFIX), `label keys starting with "${LABEL_PREFIX}" are reserved`), z.string())
  .describe("Labels (key: value) to tag or filter sandboxes");
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Environment variables, any name a program can have, `__proto__` included: zod's record drops
 * that key (it guards the plain object it builds), so each name crosses the record with a "="
 * appended, which no variable name has, and comes out in a dictionary without a prototype. The
 * JSON Schema the client sees is the plain one (meta).
 */
const envSchema = z
  .preprocess((raw) => (raw !== null && typeof raw === "object" && !Array.isArray(raw) ? Object.fromEntries(Object.entries(raw).map(([name, value]) => [`${name}=`, value])) : raw), z.record(z.string(), z.unknown()))
  .transform((suffixed) => dict(Object.entries(suffixed).map(([name, value]) => [name.slice(0, -1), value])))
  .superRefine((env, ctx) => {
    for (const [name, value] of Object.entries(env)) {
      if (!ENV_NAME.test(name)) ctx.addIssue({ code: "custom", path: [name], message: "variable names are letters, digits and _, not starting with a digit" });
      else if (typeof value !== "string") ctx.addIssue({ code: "custom", path: [name], message: "variable values are strings" });
    }
  })
  .transform((env) => env as Record<string, string>)
  .meta({ type: "object", propertyNames: { type: "string", pattern: ENV_NAME.source }, additionalProperties: { type: "string" } });
const sandboxId = z.string().min(1).describe("A sandbox id (from create_sandbox or list_sandboxes) or its name");

const runInput = z
  .object({
    code: z.string().optional().describe("Source code to run. Needs `language`, or a `filename` whose extension names the language. Give exactly one of code or command."),
    language: z.string().optional().describe(`Language of \`code\`: ${languageNames().join(", ")}`),
    filename: z.string().optional().describe("A file name such as main.py whose extension names the language of `code` when `language` is absent (the code is saved as main.py, Main.java, … in a fresh directory)"),
    command: z.string().optional().describe("A shell command line, run with sh -c. Give exactly one of code or command."),
    sandbox_id: sandboxId.optional().describe("Run in this existing sandbox (files and installed packages persist there). Without it, a fresh sandbox is created and destroyed afterwards."),
    args: z.array(z.string()).optional().describe("Arguments for the program (after the command line, or for the code)"),
    stdin: z.string().optional().describe("Text for the program's standard input"),
    env: envSchema.optional().describe("Environment variables for the program"),
    timeout_seconds: z.number().positive().max(MAX_TIMEOUT_MS / 1000).optional().describe("Kill the program (and its whole process tree) after this many seconds (at most 24 days); the result then has timed_out true and exit_code 124. Without it the program runs until it ends."),
  })
  .strict();

const runOutput = z.object({
  sandbox_id: z.string(),
  provider: z.string(),
  exit_code: z.number().int(),
  stdout: z.string().describe("UTF-8 text (U+FFFD where the bytes are not UTF-8)"),
  stderr: z.string(),
  stdout_base64: z.string().optional().describe("The exact bytes, when stdout is not valid UTF-8"),
  stderr_base64: z.string().optional(),
  timed_out: z.boolean(),
  duration_ms: z.number().int(),
  truncated: z.boolean().describe(`true when stdout or stderr passed ${OUTPUT_CAP} bytes and only the first ${OUTPUT_CAP} are returned`),
  stdout_bytes: z.number().int().describe("Bytes the program wrote to stdout, including any not returned"),
  stderr_bytes: z.number().int(),
});

const recordSchema = z.object({
  id: z.string(),
  provider: z.string(),
  name: z.string().nullable(),
  state: z.string(),
  labels: z.record(z.string(), z.string()),
  created_at: z.string().nullable(),
  image: z.string().nullable(),
});

/** Text, plus the exact bytes in base64 when the kept bytes are not UTF-8 (the cap never splits a character). */
function textFields(name: "stdout" | "stderr", capture: StreamCapture): Record<string, string> {
  const kept = capture.bytes();
  const bytes = Buffer.from(kept.buffer, kept.byteOffset, kept.byteLength);
  const fields: Record<string, string> = { [name]: bytes.toString("utf8") };
  if (!isUtf8Chunks([bytes])) fields[`${name}_base64`] = bytes.toString("base64");
  return fields;
}

interface ToolExtra {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number };
  sendNotification(notification: { method: "notifications/progress"; params: { progressToken: string | number; progress: number; message?: string } }): Promise<void>;
}

type Structured = Record<string, unknown>;

function ok(structured: Structured) {
  return { content: [{ type: "text" as const, text: JSON.stringify(structured, null, 2) }], structuredContent: structured };
}

/** One line: the CLI's error code and message (and hint), as `--json` errors carry them. */
export function errorResult(error: unknown) {
  const known = isSandboxesError(error) ? error : machineError(error);
  const code = known?.code ?? "internal_error";
  const message = known ? `${known.message}${known.hint ? `: ${known.hint}` : ""}` : (error as Error)?.message ?? String(error);
  return { content: [{ type: "text" as const, text: `${code}: ${message.replace(/\s*\n\s*/g, " ")}` }], isError: true };
}

/** Progress notifications for slow steps (image pulls, creation), when the client asked for them. */
function progressOf(extra: ToolExtra): ((message: string) => void) | undefined {
  const token = extra._meta?.progressToken;
  if (token === undefined) return undefined;
  let step = 0;
  return (message) => void extra.sendNotification({ method: "notifications/progress", params: { progressToken: token, progress: ++step, message } }).catch(() => {});
}

function bad(code: string, message: string): never {
  throw new SandboxesError(code, message, "usage");
}

function programOf(input: z.infer<typeof runInput>): Program {
  if ((input.code === undefined) === (input.command === undefined)) bad("bad_arguments", "give exactly one of `code` (with `language` or `filename`) or `command`");
  if (input.command !== undefined) {
    if (input.language !== undefined || input.filename !== undefined) bad("bad_arguments", "`language` and `filename` go with `code`, not with `command`");
    if (!input.command.trim()) bad("bad_arguments", "`command` is empty");
    return { kind: "command", line: input.command };
  }
  let language: Language | undefined;
  if (input.language !== undefined) {
    language = byName(input.language);
    if (!language) bad("unknown_language", `unknown language "${input.language}"; known: ${languageNames().join(", ")}`);
  } else if (input.filename !== undefined) {
    const extension = extname(input.filename);
    language = extension ? byExtension(extension) : undefined;
    if (!language) bad("unknown_extension", `cannot tell the language of ${input.filename}: pass \`language\` with one of ${languageNames().join(", ")}`);
  } else {
    bad("missing_language", `\`code\` needs \`language\` (one of ${languageNames().join(", ")}) or a \`filename\` with an extension`);
  }
  return { kind: "code", code: new TextEncoder().encode(input.code), language: language! };
}

export function registerTools(server: McpServer, session: Session): void {
  /** Every handler's boundary: session bookkeeping in, one-line tool errors out. */
  const guarded =
    <I>(body: (input: I, signal: AbortSignal, extra: ToolExtra) => Promise<Structured>) =>
    async (input: I, extra: ToolExtra) => {
      try {
        return ok(await session.call(extra.signal, (signal) => body(input, signal, extra)));
      } catch (error) {
        return errorResult(error);
      }
    };

  server.registerTool(
    "run",
    {
      title: "Run code or a command in a sandbox",
      description: [
        "Run a shell command or a program's source code in an isolated sandbox and get its exit code and output.",
        "Give exactly one of `command` (a sh command line) or `code` (with `language`, or a `filename` whose extension names it).",
        "Without `sandbox_id` the run gets a fresh sandbox that is destroyed afterwards, so nothing persists between calls; to keep files or installed packages, create_sandbox first and pass its id.",
        "A non-zero exit code is a normal result, not an error.",
        `stdout and stderr are each capped at ${OUTPUT_CAP} bytes (1 MiB): beyond that, truncated is true and stdout_bytes/stderr_bytes give the full sizes.`,
        "Set timeout_seconds for anything that might not end (servers, watchers, prompts).",
      ].join(" "),
      inputSchema: runInput,
      outputSchema: runOutput,
      annotations: { openWorldHint: true },
    },
    guarded(async (input: z.infer<typeof runInput>, signal, extra) => {
      const program = programOf(input);
      const out = new StreamCapture(OUTPUT_CAP);
      const err = new StreamCapture(OUTPUT_CAP);
      const sink = { stdout: (c: Uint8Array) => out.push(c), stderr: (c: Uint8Array) => err.push(c), info: () => {}, progress: progressOf(extra) };
      const run = {
        program,
        args: input.args ?? [],
        env: input.env ?? {},
        stdin: input.stdin === undefined ? undefined : new TextEncoder().encode(input.stdin),
        timeoutMs: input.timeout_seconds === undefined ? undefined : Math.round(input.timeout_seconds * 1000),
        signal,
      };
      const outcome =
        input.sandbox_id === undefined
          ? await runInFreshSandbox(session.settings, { ...session.defaults, labels: session.labels() }, run, sink)
          : await runInSandbox(await session.find(input.sandbox_id), run, sink);
      return {
        sandbox_id: outcome.sandboxId,
        provider: outcome.provider,
        exit_code: outcome.exitCode,
        ...textFields("stdout", out),
        ...textFields("stderr", err),
        timed_out: outcome.timedOut,
        duration_ms: outcome.durationMs,
        truncated: out.result().truncated || err.result().truncated,
        stdout_bytes: out.result().totalBytes,
        stderr_bytes: err.result().totalBytes,
      };
    }),
  );

  const createInput = z
    .object({
      provider: z.string().optional().describe("Where to create it: local, docker, e2b, daytona, modal, sprites, hopx, cloudflare, vercel. Default: the server's provider"),
      image: z.string().optional().describe("Image or template (e.g. python:3.12 on docker). Default: the server's image or the provider's"),
      name: z.string().min(1).optional().describe('A name to find the sandbox by (must be unused): letters, digits, "_", "." and "-", starting with a letter or digit, at most 128 characters'),
      labels: labelsSchema.optional(),
      keep: z.boolean().optional().describe("Keep the sandbox after this session ends (default false: it is destroyed then)"),
    })
    .strict();
  server.registerTool(
    "create_sandbox",
    {
      title: "Create a sandbox",
      description:
        "Create a sandbox that stays up across calls, for several run, write_file and read_file calls that share files and installed packages. Pass the returned sandbox_id to those tools. It is destroyed when this MCP session ends unless keep is true; destroy it earlier with destroy_sandbox.",
      inputSchema: createInput,
      outputSchema: z.object({ sandbox_id: z.string(), provider: z.string(), name: z.string().optional(), labels: z.record(z.string(), z.string()), keep: z.boolean() }),
      annotations: { openWorldHint: true },
    },
    guarded(async (input: z.infer<typeof createInput>, signal, extra) => {
      const labels = session.labels(input.labels);
      const created = await session.create({ provider: input.provider, image: input.image, name: input.name, labels }, Boolean(input.keep), signal, progressOf(extra));
      return { sandbox_id: created.record.id, provider: created.provider.name, ...(input.name ? { name: input.name } : {}), labels, keep: Boolean(input.keep) };
    }),
  );

  const destroyInput = z.object({ sandbox_id: sandboxId }).strict();
  server.registerTool(
    "destroy_sandbox",
    {
      title: "Destroy a sandbox",
      description: "Destroy a sandbox and everything in it, by id or name. Any sandbox that list_sandboxes shows can be destroyed, not only this session's; an id no provider knows is an error (unknown_sandbox).",
      inputSchema: destroyInput,
      outputSchema: z.object({ sandbox_id: z.string(), provider: z.string(), destroyed: z.boolean() }),
      annotations: { destructiveHint: true, idempotentHint: true },
    },
    guarded(async (input: z.infer<typeof destroyInput>) => {
      const found = await session.find(input.sandbox_id);
      await session.destroy(found);
      return { sandbox_id: found.record.id, provider: found.provider.name, destroyed: true };
    }),
  );

  const listInput = z.object({ provider: z.string().optional().describe("Only this provider (default: every configured one)"), labels: labelsSchema.optional().describe("Only sandboxes with all these labels") }).strict();
  server.registerTool(
    "list_sandboxes",
    {
      title: "List sandboxes",
      description: "List sandboxes on every configured provider (or one), optionally only those with all the given labels. Sandboxes this session created carry the label mcp-session. Providers that could not be asked are listed in warnings.",
      inputSchema: listInput,
      outputSchema: z.object({ sandboxes: z.array(recordSchema), warnings: z.array(z.object({ provider: z.string(), message: z.string() })) }),
      annotations: { readOnlyHint: true },
    },
    guarded(async (input: z.infer<typeof listInput>) => {
      const result = await listAll(session.settings, { provider: input.provider, labels: input.labels ?? {} });
      return {
        sandboxes: result.sandboxes.map((s) => ({ id: s.id, provider: s.provider, name: s.name ?? null, state: s.state, labels: s.labels, created_at: s.createdAt ?? null, image: s.image ?? null })),
        warnings: result.warnings,
      };
    }),
  );

  const encoding = z.enum(["utf8", "base64"]);
  const writeInput = z
    .object({
      sandbox_id: sandboxId,
      path: z.string().min(1).describe("Path inside the sandbox; relative paths are taken from /"),
      content: z.string().describe("The file's content, as text or base64 (see encoding)"),
      encoding: encoding.optional().describe("utf8 (default) or base64 for binary content"),
    })
    .strict();
  server.registerTool(
    "write_file",
    {
      title: "Write a file into a sandbox",
      description: `Write a file into a sandbox (created or replaced; missing parent directories are created). At most ${FILE_LIMIT} bytes (5 MiB) after decoding; for more, write several files. On the local provider only /tmp and the home directory are writable. Files move only between you and the sandbox, never to or from the host.`,
      inputSchema: writeInput,
      outputSchema: z.object({ sandbox_id: z.string(), path: z.string(), bytes: z.number().int() }),
      annotations: { idempotentHint: true },
    },
    guarded(async (input: z.infer<typeof writeInput>) => {
      const bytes = input.encoding === "base64" ? Buffer.from(input.content, "base64") : Buffer.from(input.content, "utf8");
      if (input.encoding === "base64" && bytes.toString("base64").replace(/=+$/, "") !== input.content.replace(/\s+/g, "").replace(/=+$/, "")) bad("bad_arguments", "`content` is not valid base64");
      if (bytes.length > FILE_LIMIT) bad("file_too_large", `content is ${bytes.length} bytes, more than the ${FILE_LIMIT}-byte limit of write_file`);
      const found = await session.find(input.sandbox_id);
      await writeFile(found, input.path, bytes);
      return { sandbox_id: found.record.id, path: input.path, bytes: bytes.length };
    }),
  );

  const readInput = z
    .object({ sandbox_id: sandboxId, path: z.string().min(1).describe("Path of a file inside the sandbox"), encoding: encoding.optional().describe("utf8 (default) or base64") })
    .strict();
  server.registerTool(
    "read_file",
    {
      title: "Read a file from a sandbox",
      description: `Read one file from a sandbox. At most ${FILE_LIMIT} bytes (5 MiB); read larger files in parts with run (head -c, tail -c). With encoding utf8 (default), a file that is not valid UTF-8 comes back as base64 and encoding says so.`,
      inputSchema: readInput,
      outputSchema: z.object({ content: z.string(), encoding, bytes: z.number().int() }),
      annotations: { readOnlyHint: true },
    },
    guarded(async (input: z.infer<typeof readInput>) => {
      const bytes = Buffer.from(await readFile(await session.find(input.sandbox_id), input.path, FILE_LIMIT));
      let asText: string | undefined;
      if (input.encoding !== "base64") {
        try {
          asText = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
        } catch {
          asText = undefined;
        }
      }
      return asText === undefined ? { content: bytes.toString("base64"), encoding: "base64", bytes: bytes.length } : { content: asText, encoding: "utf8", bytes: bytes.length };
    }),
  );
}
