// Moved to the ground floor (src/base/errors.ts); this path stays for code written before the move.
export * from "../base/errors";
