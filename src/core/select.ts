import { AUTO_DETECT_ORDER, findDescriptor, PROVIDERS } from "../providers/catalog";
import { DEFAULT_IMAGE } from "../providers/docker/index";
import { hostPlatform } from "../providers/platform";
import type { Detection, DetectionScope, Provider, ProviderContext, ProviderDescriptor } from "../providers/types";
import { providerConfig, type Settings } from "./config";
import { SandboxesError } from "../base/errors";

export interface ProviderChoice {
  name: string;
  /** Why this provider: shown by `providers` and in --verbose output. */
  reason: string;
  /**
   * Set when the provider was picked for the user off Linux (nobody asked for docker): the image
   * a run without --image gets, which the run names once on stderr.
   */
  image?: string;
}

export function providerContext(settings: Settings, name: string): ProviderContext {
  return { env: settings.env, config: providerConfig(settings, name), stateDir: settings.stateDir };
}

/**
 * A provider's detection, asked once per Settings: choosing the default, the `providers` table and
 * loading the provider all need it, and some detections read files (~/.modal.toml, sockets).
 * Scope "configured" (loading) takes a full detection already made, else asks for the cheaper one.
 */
export function detect(settings: Settings, descriptor: ProviderDescriptor, scope: DetectionScope = "full"): Promise<Detection> {
  let known = detections.get(settings);
  if (!known) detections.set(settings, (known = new Map()));
  const full = known.get(descriptor.name);
  if (full) return full;
  const key = scope === "full" ? descriptor.name : `${descriptor.name}\0configured`;
  let detection = known.get(key);
  if (!detection) known.set(key, (detection = descriptor.detect(providerContext(settings, descriptor.name), scope)));
  return detection;
}

const detections = new WeakMap<Settings, Map<string, Promise<Detection>>>();

/**
 * -p > SANDBOXES_PROVIDER > config default_provider > first cloud provider with credentials >
 * local; off Linux, where local cannot run, a Docker engine that answers takes its place, and
 * with none the choice fails with what to install.
 */
export async function chooseProvider(settings: Settings, flag?: string): Promise<ProviderChoice> {
  if (flag) return { name: findDescriptor(flag).name, reason: "--provider flag" };
  const fromEnv = settings.env.SANDBOXES_PROVIDER;
  if (fromEnv) return { name: findDescriptor(fromEnv).name, reason: "SANDBOXES_PROVIDER" };
  const fromFile = settings.file.default_provider;
  if (typeof fromFile === "string" && fromFile) return { name: findDescriptor(fromFile).name, reason: `default_provider in ${settings.configPath}` };
  for (const name of AUTO_DETECT_ORDER) {
    const descriptor = PROVIDERS.find((p) => p.name === name);
    if (!descriptor) continue;
    const detection = await detect(settings, descriptor);
    if (detection.configured) return { name, reason: `first provider with credentials (${detection.source ?? "configured"})` };
  }
  if (hostPlatform(settings.env) === "linux") return { name: "local", reason: "no cloud credentials found; local needs none" };
  const docker = await detect(settings, findDescriptor("docker"));
  if (docker.configured) {
    const configured = providerConfig(settings, "docker").image;
    return { name: "docker", reason: `the local provider is Linux-only; ${docker.details}`, image: typeof configured === "string" && configured ? configured : DEFAULT_IMAGE };
  }
  throw new SandboxesError(
    "no_provider",
    "no provider can run here: the local provider is Linux-only, no Docker engine answers and no cloud provider has credentials",
    "user",
    "install and start Docker Desktop, OrbStack or Colima (or set DOCKER_HOST), or configure a cloud provider (see `sandboxes providers`)",
  );
}

/**
 * Loaded providers, per environment and name: the CLI has one environment, but a program using
 * the library may pass several (other credentials, another state directory), and a provider
 * built for one must not serve another.
 */
let loadedByEnvironment = new WeakMap<Settings["env"], Map<string, Promise<Provider>>>();
const everyLoaded = new Set<Promise<Provider>>();

/** Loads a provider after checking its credentials, so a missing key is one clear line. */
export async function loadProvider(settings: Settings, name: string): Promise<Provider> {
  const descriptor = findDescriptor(name);
  const detection = await detect(settings, descriptor, "configured");
  if (!detection.configured) {
    throw new SandboxesError("not_configured", `provider ${name} is not configured: ${detection.missing ?? "no credentials"}`, "user");
  }
  let loaded = loadedByEnvironment.get(settings.env);
  if (!loaded) loadedByEnvironment.set(settings.env, (loaded = new Map()));
  // Config and state directory are part of the key too: the same environment, another config.toml.
  const key = `${name}\0${settings.stateDir}\0${JSON.stringify(providerConfig(settings, name))}`;
  let provider = loaded.get(key);
  if (!provider) {
    provider = descriptor.load(providerContext(settings, name));
    loaded.set(key, provider);
    everyLoaded.add(provider);
  }
  return provider;
}

/** Providers that can be used right now (credentials present), in declaration order. */
export async function configuredProviders(settings: Settings): Promise<ProviderDescriptor[]> {
  const detections = await Promise.all(PROVIDERS.map((descriptor) => detect(settings, descriptor)));
  return PROVIDERS.filter((_, index) => detections[index]!.configured);
}

/** Closes every provider we loaded so open sockets/channels do not keep the process alive. */
export async function closeProviders(): Promise<void> {
  const providers = await Promise.allSettled([...everyLoaded]);
  everyLoaded.clear();
  // WeakMap entries cannot be listed: forget them by starting over.
  loadedByEnvironment = new WeakMap();
  await Promise.allSettled(providers.map((p) => (p.status === "fulfilled" ? p.value.close?.() : undefined)));
}
