import { PROVIDERS } from "../providers/index";
import type { Capabilities } from "../providers/types";
import type { Settings } from "./config";
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
export function providerReport(settings: Settings): { providers: ProviderReport[]; default: { name: string; reason: string } } {
  const choice = chooseProvider(settings);
  return {
    default: choice,
    providers: PROVIDERS.map((descriptor) => {
      const detection = detect(settings, descriptor);
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
