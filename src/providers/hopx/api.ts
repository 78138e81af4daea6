/**
 * Our own client for the two Hopx HTTP surfaces (../shared/reference/provider-wire.md §4):
 *   - the control plane, REST/JSON under /v1/sandboxes, authenticated with X-API-Key;
 *   - the agent inside each VM, at the sandbox's `public_host`, authenticated with a Bearer JWT
 *     that create and POST /v1/sandboxes/{id}/token/refresh hand out.
 * Failures become an HttpError (an answer with a status) or HopxNetworkError (no answer); the
 * provider decides which are worth a retry.
 */
import { ProviderError } from "../../base/errors";
import { isTransientStatus } from "../retry";
import { HttpError, streamOf } from "../shared/http";

export class HopxNetworkError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = "HopxNetworkError";
  }
}

/** 408/429/5xx answers and connections that failed or dropped. */
export function isTransient(error: unknown): boolean {
  if (error instanceof HttpError) return isTransientStatus(error.status);
  return error instanceof HopxNetworkError;
}

export interface SandboxInfo {
  id?: string;
  sandbox_id?: string;
  template_name?: string;
  template_id?: string | number;
  status?: string;
  public_host?: string;
  created_at?: string;
  expires_at?: string;
  [key: string]: unknown;
}

export interface CreateAnswer extends SandboxInfo {
  auth_token?: string;
  token_expires_at?: string;
}

export interface ListPage {
  data?: SandboxInfo[];
  has_more?: boolean;
  next_cursor?: string | null;
}

/** A token for one sandbox's agent, and where that agent lives. */
export interface AgentAccess {
  host: string;
  token: string;
}

export interface RequestOptions {
  body?: unknown;
  /** A JSON body already written out (a spooled file: files/write of a big file), sent as it is. */
  raw?: Blob;
  query?: Record<string, string>;
  signal?: AbortSignal;
  /** Bounds this one request (ms); 60 s unless given. */
  timeoutMs?: number;
  /** The body as a stream instead of JSON (GET /files/download); `timeoutMs` bounds reading it too. */
  stream?: boolean;
}

const REQUEST_TIMEOUT_MS = 60_000;

export class HopxApi {
  constructor(
    private readonly apiUrl: string,
    private readonly apiKey: string,
  ) {}

  control<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return request<T>(this.apiUrl, method, path, { "X-API-Key": this.apiKey }, options);
  }

  agent<T>(access: AgentAccess, method: string, path: string, options: RequestOptions = {}): Promise<T> {
    return request<T>(access.host, method, path, { Authorization: `Bearer ${access.token}` }, options);
  }
}

async function request<T>(base: string, method: string, path: string, auth: Record<string, string>, options: RequestOptions): Promise<T> {
  const url = new URL(path, `${base.replace(/\/+$/, "")}/`);
  for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
  const bound = AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, bound]) : bound;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: { ...auth, Accept: "application/json", ...(options.body !== undefined || options.raw ? { "Content-Type": "application/json" } : {}) },
      body: options.raw ?? (options.body !== undefined ? JSON.stringify(options.body) : undefined),
      signal,
    });
  } catch (error) {
    throw networkError(error, options.signal);
  }
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    throw httpError(response, text);
  }
  try {
    if (options.stream) return streamOf(response) as T;
    const text = await response.text();
    return (text ? JSON.parse(text) : {}) as T;
  } catch (error) {
    if (error instanceof SyntaxError) throw new HttpError(response.status, `the answer to ${method} ${url.pathname} is not JSON`);
    throw networkError(error, options.signal);
  }
}

function httpError(response: Response, text: string): HttpError {
  let message = text.trim().split("\n")[0]?.slice(0, 300) || response.statusText || "no message";
  let code: string | undefined;
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: unknown; code?: unknown; request_id?: unknown };
    const error = body.error as { message?: unknown } | string | undefined;
    const found = body.message ?? (typeof error === "string" ? error : error?.message);
    if (typeof found === "string" && found) message = found;
    if (typeof body.code === "string") code = body.code;
  } catch {}
  return HttpError.of(response, message, code);
}

function networkError(error: unknown, caller?: AbortSignal): Error {
  // The caller's own abort is not a network failure: it passes through untouched.
  if (caller?.aborted) return error as Error;
  const name = (error as Error)?.name;
  if (name === "TimeoutError") return new HopxNetworkError("no answer within the request timeout", "ETIMEDOUT");
  const code = (error as { code?: string })?.code;
  const what = code === "ECONNREFUSED" || code === "ConnectionRefused" ? "the connection was refused" : code === "ECONNRESET" || code === "ConnectionClosed" ? "the connection was dropped" : "a network error";
  return new HopxNetworkError(`${what}${code ? ` (${code})` : ""}`, code);
}

/** A non-transient HTTP failure -> one line a user can act on. */
export function explain(provider: string, what: string, error: unknown): unknown {
  if (error instanceof HttpError) {
    if (error.status === 401 || error.status === 403) {
      return new ProviderError(provider, `${what}: the API key was rejected (${error.message})`, error.status, error.requestId, "check HOPX_API_KEY (or api_key under [providers.hopx] in config.toml)", "auth_failed");
    }
    if (!isTransientStatus(error.status)) return new ProviderError(provider, `${what}: ${error.message}`, error.status, error.requestId);
  }
  return error;
}
