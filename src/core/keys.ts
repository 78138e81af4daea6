/** Moved to the ground floor (src/base/keys.ts), which providers may import too. */
export * from "../base/keys";
