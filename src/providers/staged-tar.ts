/**
 * Shared by providers whose APIs move whole files (Sprites, Hopx) but no tar stream: the archive
 * is staged as a file in the sandbox's /tmp and packed or unpacked there by `tar`.
 */
import { randomBytes } from "node:crypto";

/** A fresh path in the sandbox's /tmp for a staged archive. */
export function stagedTarPath(direction: "in" | "out"): string {
  return `/tmp/.sandboxes-${direction}-${randomBytes(6).toString("hex")}.tar`;
}

/** sh -c script: unpack the staged archive "$2" into directory "$1" (created), then remove it. */
export const UNPACK_STAGED_TAR = 'mkdir -p "$1" && tar -x --no-same-owner -f "$2" -C "$1"; code=$?; rm -f "$2"; exit $code';

/** sh -c script: pack "$1" (its single top-level entry is basename "$1") into the staged archive "$2". */
export const PACK_TO_STAGED_TAR = 'cd "$(dirname "$1")" && tar -c -f "$2" "$(basename "$1")"';
