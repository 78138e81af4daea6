import { SandboxesError, UsageError } from "../base/errors";
import { MAX_OUTPUT_LIMIT, parseSize } from "../core/capture";
import { dict, own } from "../base/keys";
import { readAtMost } from "../base/read-file";
import { checkTimeoutMs, MAX_TIMEOUT_MS } from "../core/timeout";

/**
 * Arg fragments reused by commands. `multiple: true` marks a repeatable flag; parse.ts parses
 * strictly with these definitions (argv.ts: every value of a repeated flag, unknown flags
 * refused), and ParsedArgs<A> is the type of what it returns for a table A.
 */
export interface FlagDef {
  type: "string" | "boolean" | "positional";
  description: string;
  alias?: string;
  multiple?: boolean;
  valueHint?: string;
  required?: boolean;
  default?: unknown;
}
export type FlagsDef = Record<string, FlagDef>;

export const providerArg = {
  provider: { type: "string", alias: "p", description: "Provider to use (see `sandboxes providers`)", valueHint: "name" },
} satisfies FlagsDef;

export const jsonArg = {
  json: { type: "boolean", description: "Print exactly one JSON document on stdout" },
} satisfies FlagsDef;

export const envArgs = {
  env: { type: "string", alias: "e", multiple: true, description: "Set KEY=VALUE in the sandbox; KEY alone passes this shell's value", valueHint: "KEY=VALUE" },
} satisfies FlagsDef;

export const labelArg = {
  label: { type: "string", alias: "l", multiple: true, description: "Label key=value", valueHint: "key=value" },
} satisfies FlagsDef;

export const timeoutArg = {
  timeout: { type: "string", alias: "t", description: "Kill the command (and its whole process tree) after SECONDS (up to 24 days: 2073600, or 24d); exit 124", valueHint: "seconds" },
} satisfies FlagsDef;

export const maxOutputArg = {
  "max-output": { type: "string", description: "With --json, keep at most SIZE bytes of each stream (default 16m, up to 1g); the rest is counted, not kept", valueHint: "size" },
} satisfies FlagsDef;

/** The --max-output cap in bytes, or undefined for the default; only --json captures output. */
export function parseMaxOutput(value: string | undefined, json: boolean): number | undefined {
  if (value === undefined) return undefined;
  if (!json) throw new UsageError("bad_value", "--max-output caps the output kept for --json; streamed output is never cut: add --json or drop --max-output");
  const bytes = parseSize(value);
  if (bytes === undefined || bytes > MAX_OUTPUT_LIMIT) throw new UsageError("bad_value", `--max-output must be a size from 0 to 1g (bytes, or with k, m or g), got "${value}"`);
  return bytes;
}

export const workdirArg = {
  workdir: { type: "string", alias: "w", description: "Working directory inside the sandbox", valueHint: "path" },
} satisfies FlagsDef;

export const networkArgs = {
  network: { type: "string", description: "Network policy: default (the provider's; on local the public internet only, through a proxy), none, or host (local, docker)", valueHint: "default|none|host" },
  "allow-net": { type: "string", multiple: true, description: "Reach only these destinations: a host, *.domain, an IP or a CIDR, with an optional :PORT", valueHint: "host[:port]" },
} satisfies FlagsDef;

/** The value a flag parses to: a switch is true or false, a repeatable flag every value given (maybe none). */
type FlagValue<D> = D extends { type: "boolean" } ? boolean : D extends { multiple: true } ? string[] : string | undefined;

/**
 * The parsed arguments of a command whose table is A: one typed field per flag, the positionals
 * in `_` (the table names them for help; how many a command takes is its own check) and the
 * words after `--` in `"--"`.
 */
export type ParsedArgs<A extends FlagsDef = FlagsDef> = {
  readonly [K in keyof A as A[K] extends { type: "positional" } ? never : K]: FlagValue<A[K]>;
} & { readonly _: string[]; readonly "--": string[] };

/** Linux takes at most 2 MiB of arguments and environment for a program, so half that is plenty. */
const MAX_ENV_FILE_BYTES = 1024 * 1024;

export function parseEnv(values: string[], callerEnv: Record<string, string | undefined>, envFile?: string): Record<string, string> {
  const env = dict<string>();
  if (envFile) {
    // Required here, not imported: every command loads this file, and node:fs costs ~1 ms.
    const fs = require("node:fs") as typeof import("node:fs");
    if (!fs.existsSync(envFile)) throw new UsageError("file_not_found", `env file not found: ${envFile}`);
    const bytes = readAtMost(fs, envFile, MAX_ENV_FILE_BYTES);
    if (!bytes) throw new UsageError("env_file_too_large", `${envFile} is larger than ${MAX_ENV_FILE_BYTES / 1024 / 1024} MiB, the most --env-file takes`, "an environment that large would not reach a program anyway: pass files with --upload");
    for (const [index, raw] of new TextDecoder().decode(bytes).split(/\r?\n/).entries()) {
      const line = raw.trim();
      if (!line || line.startsWith("#")) continue;
      const assignment = line.replace(/^export\s+/, "");
      const eq = assignment.indexOf("=");
      if (eq === -1 && VARIABLE_NAME.test(assignment)) {
        // As docker's --env-file: a name alone is -e KEY.
        passThrough(env, assignment, callerEnv);
        continue;
      }
      if (eq <= 0) throw new UsageError("bad_env", `${envFile}:${index + 1}: expected KEY=VALUE or KEY, got "${line}"`);
      let value = assignment.slice(eq + 1);
      if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
      env[checkKey(assignment.slice(0, eq), `${envFile}:${index + 1}`)] = value;
    }
  }
  for (const item of values) {
    const eq = item.indexOf("=");
    if (eq === -1) {
      passThrough(env, checkKey(item, "-e"), callerEnv);
      continue;
    }
    env[checkKey(item.slice(0, eq), "-e")] = item.slice(eq + 1);
  }
  return env;
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** KEY alone: this shell's value of KEY, and nothing when it has none (as docker's -e KEY). */
function passThrough(env: Record<string, string>, key: string, callerEnv: Record<string, string | undefined>): void {
  const value = own(callerEnv, key);
  if (value !== undefined) env[key] = value;
}

function checkKey(key: string, where: string): string {
  if (!key) throw new UsageError("bad_env", `${where}: empty variable name: write -e KEY=VALUE`);
  if (!VARIABLE_NAME.test(key)) throw new UsageError("bad_env", `${where}: "${key}" is not a valid variable name (letters, digits and _; not starting with a digit)`);
  return key;
}

export function parseLabels(values: string[]): Record<string, string> {
  const labels = dict<string>();
  for (const item of values) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw new UsageError("bad_label", `label "${item}" must be key=value`);
    const key = item.slice(0, eq);
    if (key.startsWith("sandboxes.")) throw new UsageError("bad_label", `label keys starting with "sandboxes." are reserved`);
    labels[key] = item.slice(eq + 1);
  }
  return labels;
}

export function parseSeconds(value: string | undefined, flag = "--timeout"): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text);
  if (!match) throw new UsageError("bad_timeout", `${flag} must be a number of seconds (e.g. 30, 1.5, 2m, 3d), got "${text}"`);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as "ms" | "s" | "m" | "h" | "d"] ?? 1;
  const seconds = Number(match[1]) * unit;
  if (seconds <= 0) throw new UsageError("bad_timeout", `${flag} must be greater than 0`);
  return seconds;
}

/** --timeout in milliseconds: more than 0 and at most 24 days (core/timeout.ts). */
export function parseTimeoutMs(value: string | undefined): number | undefined {
  const seconds = parseSeconds(value);
  if (seconds === undefined) return undefined;
  if (seconds * 1000 > MAX_TIMEOUT_MS) {
    throw new UsageError("bad_timeout", `--timeout must be at most 24 days (${MAX_TIMEOUT_MS / 1000} seconds, or 24d), got "${value?.trim()}"`);
  }
  return checkTimeoutMs(seconds * 1000, "--timeout");
}

export function parsePositiveNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new UsageError("bad_value", `${flag} must be a positive number, got "${value}"`);
  return number;
}

export function parseCount(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number <= 0) throw new UsageError("bad_value", `${flag} must be a whole number above 0, got "${value}"`);
  return number;
}

export function parseMemory(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+)([kmg]?)b?$/i.exec(value.trim());
  if (!match) throw new UsageError("bad_value", `--memory must look like 512m or 2g, got "${value}"`);
  const factor = { "": 1 / (1024 * 1024), k: 1 / 1024, m: 1, g: 1024 }[match[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Math.max(1, Math.round(Number(match[1]) * factor));
}

export function splitPair(spec: string, flag: string, defaultSecond: (first: string) => string): { first: string; second: string } {
  const index = spec.lastIndexOf(":");
  if (index <= 0) return { first: spec, second: defaultSecond(spec) };
  if (!spec.slice(0, index)) throw new SandboxesError("bad_value", `${flag}: empty path in "${spec}"`, "usage");
  return { first: spec.slice(0, index), second: spec.slice(index + 1) || defaultSecond(spec.slice(0, index)) };
}
