import type { SandboxState } from "../types";

/** A provider's status words -> our states, as data; any word not listed is "unknown". */
export function stateMap(words: Partial<Record<Exclude<SandboxState, "unknown">, string[]>>): (status: string | undefined) => SandboxState {
  const table = new Map<string, SandboxState>();
  for (const [state, said] of Object.entries(words) as Array<[SandboxState, string[]]>) for (const word of said) table.set(word, state);
  return (status) => (status !== undefined && table.get(status)) || "unknown";
}
