/**
 * putArchive and getArchive for providers whose exec carries bytes both ways (local, Modal): tar
 * in the sandbox reads the archive from stdin or writes it to stdout. Kept apart from
 * staged-archive.ts so that the local provider's start-up loads nothing more (node:crypto).
 */
import { transferFailed } from "../../base/errors";
import type { ArchiveChunk, ArchiveSource, ExecOutcome, ExecSpec } from "../types";

/** sh -c script: unpack the tar on stdin into directory "$1" (created). */
export const UNPACK_STDIN_TAR = 'mkdir -p "$1" && exec tar -x --no-same-owner -f - -C "$1"';

/** sh -c script: pack "$1" onto stdout (its single top-level entry is basename "$1"). */
export const PACK_TO_STDOUT_TAR = '[ -e "$1" ] || { echo "no such file or directory" >&2; exit 1; }; cd "$(dirname "$1")" && exec tar -c -f - "$(basename "$1")"';

/**
 * A provider's putArchive and getArchive made of its exec. The archive in is the command's stdin,
 * streamed; the archive out reaches `onChunk` with the exec's backpressure. A failure becomes one
 * line with tar's complaint (transferFailed); only the end of stderr is kept, however much a
 * command writes there.
 */
export function archivesThroughExec(exec: (id: string, spec: ExecSpec) => Promise<ExecOutcome>) {
  const tar = async (id: string, argv: string[], io: { stdin?: ReadableStream<Uint8Array>; onChunk?: ArchiveChunk }, what: string): Promise<void> => {
    let errors = "";
    const decoder = new TextDecoder();
    const outcome = await exec(id, { argv, env: {}, stdin: io.stdin, onStdout: io.onChunk ?? (() => {}), onStderr: (chunk) => void (errors = (errors + decoder.decode(chunk, { stream: true })).slice(-4096)) });
    if (outcome.exitCode !== 0) throw transferFailed(what, errors, outcome.exitCode);
  };
  return {
    putArchive: (id: string, dir: string, archive: ArchiveSource): Promise<void> => tar(id, ["sh", "-c", UNPACK_STDIN_TAR, "sh", dir], { stdin: archive.stream() }, `cannot write files into ${dir}`),
    getArchive: (id: string, path: string, onChunk: ArchiveChunk): Promise<void> => tar(id, ["sh", "-c", PACK_TO_STDOUT_TAR, "sh", path], { onChunk }, `cannot read ${path}`),
  };
}
