/**
 * putArchive and getArchive for providers whose APIs move whole files but no tar stream (E2B,
 * Sprites, Hopx, Vercel, Cloudflare): the archive is staged as a file in the sandbox and packed
 * or unpacked there by `tar`.
 */
import { randomBytes } from "node:crypto";
import { transferFailed } from "../../base/errors";
import type { ArchiveChunk, ArchiveSource, ExecOutcome, ExecSpec } from "../types";
import { pumpBody } from "./http";

/** A helper command of ours: its exit code and what it wrote on stderr. */
export type Run = (argv: string[]) => Promise<{ code: number; stderr: string }>;

export interface StagedFiles {
  /**
   * One whole file into the sandbox, streamed where the API takes a stream (each attempt reads
   * `source` again), else written to disk first and sent from there (spool.ts); `what` names the
   * transfer in errors.
   */
  upload(path: string, source: ArchiveSource, what: string): Promise<unknown>;
  /**
   * One whole file out of the sandbox, as a stream: retried (where the API allows) until the
   * stream opens, never once bytes have been passed on.
   */
  download(path: string, what: string): Promise<AsyncIterable<Uint8Array>>;
  /** How helper commands run; stagedArchives defaults to the provider's own exec. */
  run?: Run;
  /** Where archives are staged (default /tmp). */
  stagingDir?: string;
}

/** A fresh path for a staged archive. */
export function stagedTarPath(direction: "in" | "out", dir = "/tmp"): string {
  return `${dir}/.sandboxes-${direction}-${randomBytes(6).toString("hex")}.tar`;
}

/** sh -c script: unpack the staged archive "$2" into directory "$1" (created), then remove it. */
export const UNPACK_STAGED_TAR = 'mkdir -p "$1" && tar -x --no-same-owner -f "$2" -C "$1"; code=$?; rm -f "$2"; exit $code';

/** sh -c script: pack "$1" (its single top-level entry is basename "$1") into the staged archive "$2". */
export const PACK_TO_STAGED_TAR = 'cd "$(dirname "$1")" && tar -c -f "$2" "$(basename "$1")"';

/** Runs a helper command; a failure becomes one line that says what could not be done and why (transferFailed). */
export async function runChecked(run: Run, argv: string[], what: string): Promise<void> {
  const result = await run(argv);
  if (result.code !== 0) throw transferFailed(what, result.stderr, result.code);
}

/** Provider.putArchive: the tar is uploaded, then unpacked into `dir` by tar in the sandbox. */
export async function putStagedArchive(files: StagedFiles & { run: Run }, dir: string, tar: ArchiveSource): Promise<void> {
  const staged = stagedTarPath("in", files.stagingDir);
  await files.upload(staged, tar, `uploading files to ${dir}`);
  await runChecked(files.run, ["sh", "-c", UNPACK_STAGED_TAR, "sh", dir, staged], `cannot write files into ${dir}`);
}

/** Provider.getArchive: tar in the sandbox packs `path`, and the archive is streamed down. */
export async function getStagedArchive(files: StagedFiles & { run: Run }, path: string, onChunk: ArchiveChunk): Promise<void> {
  const staged = stagedTarPath("out", files.stagingDir);
  try {
    await runChecked(files.run, ["sh", "-c", PACK_TO_STAGED_TAR, "sh", path, staged], `cannot read ${path}`);
    await pumpBody(await files.download(staged, `downloading ${path}`), onChunk);
  } finally {
    await files.run(["rm", "-f", staged]).catch(() => {});
  }
}

/** A Run made of a provider's own exec: no stdin, stdout dropped. */
export function runThroughExec(exec: (spec: ExecSpec) => Promise<{ exitCode: number }>, timeoutMs?: number): Run {
  return async (argv) => {
    const errors: Uint8Array[] = [];
    const outcome = await exec({ argv, env: {}, ...(timeoutMs ? { timeoutMs } : {}), onStdout: () => {}, onStderr: (chunk) => errors.push(chunk) });
    return { code: outcome.exitCode, stderr: Buffer.concat(errors).toString("utf8") };
  };
}

/**
 * A provider's putArchive and getArchive, given how to reach one sandbox's files. Helper commands
 * run through the provider's own exec unless the files say otherwise.
 */
export function stagedArchives(provider: { exec(id: string, spec: ExecSpec): Promise<ExecOutcome> }, filesOf: (id: string) => StagedFiles | Promise<StagedFiles>) {
  const files = async (id: string) => {
    const found = await filesOf(id);
    return { ...found, run: found.run ?? runThroughExec((spec) => provider.exec(id, spec)) };
  };
  return {
    putArchive: async (id: string, dir: string, tar: ArchiveSource): Promise<void> => putStagedArchive(await files(id), dir, tar),
    getArchive: async (id: string, path: string, onChunk: ArchiveChunk): Promise<void> => getStagedArchive(await files(id), path, onChunk),
  };
}
