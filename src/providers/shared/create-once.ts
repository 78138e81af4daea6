import { LABEL_PREFIX } from "../types";

/** The label (or tag, or metadata key) that marks what one create call made, so a retry can find it. */
export const CREATE_TOKEN_KEY = `${LABEL_PREFIX}create-token`;

export interface CreateOnce<T> {
  /** Runs `attempt` again while its failure is transient (the provider's withRetry). */
  retry(attempt: (attempt: number) => Promise<T>): Promise<T>;
  /** One create request. */
  create(): Promise<T>;
  /** The sandbox an earlier attempt made before its answer was lost, if there is one. */
  earlier(): Promise<T | null | undefined>;
  /** Whether what `earlier` found is really ours (not a sandbox someone else has under that name). */
  ours?(found: T): boolean;
  /** What must still succeed before the sandbox counts as made (e.g. waiting for it to start). */
  settle?(made: T): Promise<unknown>;
  /** After a failure: removes whatever the attempts made, so nothing outlives it. Its own failure is ignored. */
  cleanUp(): Promise<unknown>;
}

/**
 * A create made safe to retry: before each retry it looks for what the lost answer may have made
 * (by a token of ours, or a name only we use) instead of making a second sandbox, and a create
 * that fails in the end leaves nothing behind.
 */
export async function createOnce<T>(steps: CreateOnce<T>): Promise<T> {
  try {
    const made = await steps.retry(async (attempt) => {
      if (attempt > 1) {
        const found = await steps.earlier();
        if (found && (steps.ours?.(found) ?? true)) return found;
      }
      return steps.create();
    });
    await steps.settle?.(made);
    return made;
  } catch (error) {
    await steps.cleanUp().catch(() => {});
    throw error;
  }
}
