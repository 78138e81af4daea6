import { PROVIDERS } from "../providers/catalog";
import type { Capabilities } from "../providers/types";
import type { Settings } from "./config";
import { isSandboxesError } from "../base/errors";
import { chooseProvider, detect } from "./select";

export interface ProviderReport {
  name: string;
  description: string;
  configured: boolean;
  source?: string;
  missing?: string;
  details?: string;
  capabilities: Capabilities;
  default: boolean;
}

/** Everything `providers` shows; no network, no SDK import, never creates a sandbox. */
export async function providerReport(settings: Settings): Promise<{ providers: ProviderReport[]; default: { name: string | null; reason: string } }> {
  const [choice, detections] = await Promise.all([defaultChoice(settings), Promise.all(PROVIDERS.map((descriptor) => detect(settings, descriptor)))]);
  return {
    default: choice,
    providers: PROVIDERS.map((descriptor, index) => {
      const detection = detections[index]!;
      return {
        name: descriptor.name,
        description: descriptor.description,
        configured: detection.configured,
        source: detection.source,
        missing: detection.missing,
        details: detection.details,
        capabilities: descriptor.capabilities,
        default: descriptor.name === choice.name,
      };
    }),
  };
}

/** The default provider, or none (off Linux with no engine and no credentials) with the reason and the fix. */
async function defaultChoice(settings: Settings): Promise<{ name: string | null; reason: string }> {
  try {
    const { name, reason } = await chooseProvider(settings);
    return { name, reason };
  } catch (error) {
    if (!isSandboxesError(error) || error.code !== "no_provider") throw error;
    return { name: null, reason: `${error.message}: ${error.hint}` };
  }
}
