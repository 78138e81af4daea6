import { closest, UsageError } from "../base/errors";
import type { ProviderDescriptor } from "./types";
import { localDescriptor } from "./local";
import { e2bDescriptor } from "./e2b";
import { daytonaDescriptor } from "./daytona";
import { dockerDescriptor } from "./docker";
import { modalDescriptor } from "./modal";
import { spritesDescriptor } from "./sprites";
import { hopxDescriptor } from "./hopx";
import { cloudflareDescriptor } from "./cloudflare";
import { vercelDescriptor } from "./vercel";

/**
 * Every provider we know, in the order auto-detection tries them (the seed's order, then the
 * engines that need no account). Descriptors are light: importing this file imports no SDK.
 */
export const PROVIDERS: readonly ProviderDescriptor[] = [localDescriptor, dockerDescriptor, daytonaDescriptor, e2bDescriptor, modalDescriptor, spritesDescriptor, hopxDescriptor, cloudflareDescriptor, vercelDescriptor];

/** Cloud providers tried in this order when nothing else picks one (the seed's documented order). */
export const AUTO_DETECT_ORDER = ["daytona", "e2b", "sprites", "hopx", "vercel", "modal", "cloudflare"];

export function providerNames(): string[] {
  return PROVIDERS.map((p) => p.name);
}

export function findDescriptor(name: string): ProviderDescriptor {
  const descriptor = PROVIDERS.find((p) => p.name === name);
  if (!descriptor) {
    const suggestion = closest(name, providerNames());
    throw new UsageError(
      "unknown_provider",
      `unknown provider "${name}"${suggestion ? ` (did you mean "${suggestion}"?)` : ""}; known providers: ${providerNames().join(", ")}`,
    );
  }
  return descriptor;
}
