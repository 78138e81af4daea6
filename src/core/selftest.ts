import { findDescriptor } from "../providers/catalog";
import { StreamCapture } from "./capture";
import type { Settings } from "./config";
import { createOn, destroySandbox, type Lease } from "./lifecycle";
import { configuredProviders, loadProvider } from "./select";

export interface ProviderCheck {
  provider: string;
  ok: boolean;
  /** Each step's duration, for the table. */
  createMs?: number;
  execMs?: number;
  destroyMs?: number;
  error?: string;
}

const EXPECTED = "sandboxes-self-test";

/** create -> run -> check output -> destroy, for each provider; always destroys what it made. */
export async function testProviders(settings: Settings, only?: string): Promise<ProviderCheck[]> {
  const names = only ? [findDescriptor(only).name] : (await configuredProviders(settings)).map((d) => d.name);
  const checks: ProviderCheck[] = [];
  for (const name of names) checks.push(await testOne(settings, name));
  return checks;
}

async function testOne(settings: Settings, name: string): Promise<ProviderCheck> {
  const check: ProviderCheck = { provider: name, ok: false };
  let lease: Lease | undefined;
  try {
    const provider = await loadProvider(settings, name);
    let t = performance.now();
    lease = await createOn(settings, provider, { labels: { "sandboxes.test": "1" }, env: {} }, { register: false });
    check.createMs = Math.round(performance.now() - t);
    t = performance.now();
    // A broken image could flood: a line is expected, so a little more than one is kept.
    const out = new StreamCapture(64 * 1024);
    const outcome = await provider.exec(lease.record.id, { argv: ["sh", "-c", `echo ${EXPECTED}; exit 3`], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
    check.execMs = Math.round(performance.now() - t);
    const text = Buffer.from(out.bytes()).toString("utf8");
    if (text.trim() !== EXPECTED) throw new Error(`unexpected output ${JSON.stringify(text)}`);
    if (outcome.exitCode !== 3) throw new Error(`unexpected exit code ${outcome.exitCode} (expected 3)`);
    check.ok = true;
  } catch (error) {
    check.error = (error as Error).message;
  } finally {
    if (lease) {
      const t = performance.now();
      try {
        await destroySandbox(settings, lease);
        check.destroyMs = Math.round(performance.now() - t);
      } catch (error) {
        check.ok = false;
        check.error = `destroy failed: ${(error as Error).message}`;
      }
    }
  }
  return check;
}
