/** The shells `sandboxes completion` writes scripts for; apart from spec.ts, which loads every table. */
export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = (typeof SHELLS)[number];
