// Moved to the ground floor (src/base/quote.ts); this path stays for code written before the move.
export * from "../base/quote";
