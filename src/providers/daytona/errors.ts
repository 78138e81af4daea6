import { DaytonaConnectionError, DaytonaError } from "@daytonaio/sdk";
import { ProviderError, SandboxesError } from "../../base/errors";
import { isTransientStatus } from "../retry";

const NAME = "daytona";

/** No response, or a status a retry can fix: worth another attempt on an idempotent call. */
export function isTransient(error: unknown): boolean {
  if (error instanceof DaytonaConnectionError) return true;
  const status = (error as { statusCode?: number }).statusCode;
  if (error instanceof DaytonaError && status === undefined) return /socket|ECONNRESET|EPIPE|aborted|terminated|network/i.test(error.message);
  return isTransientStatus(status);
}

/** Only statuses that say the request was refused before it ran: safe to send a command again. */
export function isRefused(error: unknown): boolean {
  const status = (error as { statusCode?: number }).statusCode;
  return status === 429 || status === 503;
}

function requestIdOf(error: unknown): string | undefined {
  const headers = (error as { headers?: Record<string, unknown> }).headers;
  const id = headers?.["x-request-id"] ?? headers?.["x-daytona-request-id"];
  return typeof id === "string" ? id : undefined;
}

/** Non-transient SDK errors become one clear ProviderError; transient ones stay raw for withRetry. */
export function translate(error: unknown, what: string): unknown {
  // Some SDK messages carry a require stack or a body dump on later lines: one line is the contract.
  if (error instanceof Error && !(error instanceof SandboxesError)) error.message = error.message.split("\n")[0]!.trim();
  if (error instanceof SandboxesError || !(error instanceof DaytonaError) || isTransient(error)) return error;
  const status = error.statusCode;
  const hint =
    status === 401 ? "check DAYTONA_API_KEY (or api_key in config.toml)"
    : status === 403 ? "the API key lacks permission for this: check its scopes in the Daytona dashboard"
    : status === 404 ? "see `sandboxes list -p daytona`"
    : undefined;
  return new ProviderError(NAME, `${what} failed: ${error.message}`, status, requestIdOf(error), hint);
}
