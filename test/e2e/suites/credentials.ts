/**
 * The one credentials suite for every cloud provider, through the compiled binary against its
 * fake: what `run` and `providers` say without credentials, with them in the environment or in
 * config.toml, and with a wrong one. `providers` never calls the service; a refusal is one line
 * and exit 125, and nothing is made.
 *
 *   testCredentials(CLOUD_FAKES.e2b());
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cli, plain } from "../../helpers";
import { type CloudFake, useFake } from "./fakes";

interface ProviderRow {
  name: string;
  configured: boolean;
  source?: string;
  missing?: string;
}

/** `providers --json` and the plain table: this provider's entry and its row. */
async function providers(name: string, env: Record<string, string>): Promise<{ entry: ProviderRow | undefined; row: string | undefined }> {
  const json = await cli(["providers", "--json"], { env });
  expect(json.code).toBe(0);
  const table = await cli(["providers"], { env });
  expect(table.code).toBe(0);
  return {
    entry: (JSON.parse(json.stdout) as { providers: ProviderRow[] }).providers.find((p) => p.name === name),
    row: table.stdout.split("\n").find((line) => line.split("\t")[0]!.split(" ")[0] === name),
  };
}

export function testCredentials(fake: CloudFake): void {
  const { name, credentials } = fake;

  describe(`${name} credentials through the compiled binary`, () => {
    useFake(fake);

    test(`without credentials, run -p ${name} is one line naming what to set, exit 125, and no call`, async () => {
      const requests = fake.requests();
      const bare = fake.machine(credentials.withoutKey?.() ?? credentials.urls());
      const result = await cli(["run", "-p", name, "true"], { env: bare.env });
      expect(plain(result)).toEqual({ code: 125, stdout: "", stderr: `${credentials.runMissing}\n` });
      expect(fake.requests()).toBe(requests);
    });

    test("providers on a machine without credentials says what to set", async () => {
      const { entry, row } = await providers(name, fake.machine().env);
      expect(entry).toMatchObject({ configured: false, missing: credentials.providersMissing });
      expect(row).toStartWith(`${name}\tno\t${credentials.providersMissing}\t`);
    });

    test("providers shows it configured from the environment, with its capabilities, and never calls the service", async () => {
      const requests = fake.requests();
      const { entry, row } = await providers(name, fake.env);
      expect(entry).toMatchObject({ configured: true, source: credentials.envSource });
      expect(row).toMatch(new RegExp(`^${name}( \\(default\\))?\\tyes\\t${credentials.envSource.replace(/[+]/g, "\\+")}\\t`));
      // The capabilities column lists exactly the declared ones.
      const declared = Object.entries(fake.capabilities).filter(([, on]) => on).map(([capability]) => capability);
      expect(row!.split("\t")[3]!.split(",").sort()).toEqual(declared.sort());
      expect(fake.requests()).toBe(requests);
    });

    test("config.toml configures it: providers says so without calling the service, and run works", async () => {
      const configured = fake.machine(credentials.urls());
      const dir = join(configured.env.XDG_CONFIG_HOME!, "sandboxes");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "config.toml"), credentials.configToml());
      const requests = fake.requests();
      const { entry } = await providers(name, configured.env);
      expect(entry).toMatchObject({ configured: true, source: credentials.configSource ?? "config.toml" });
      expect(fake.requests()).toBe(requests);
      const ran = await cli(["run", "-p", name, "echo from config"], { env: configured.env });
      expect(plain(ran)).toEqual({ code: 0, stdout: "from config\n", stderr: "" });
      credentials.afterConfigRun?.();
      expect(fake.live()).toBe(0);
    });

    test.skipIf(!credentials.wrongKey)("a wrong credential is one line naming the provider and what to check, exit 125, nothing made", async () => {
      const { env, firstLine, contains } = credentials.wrongKey!;
      const made = fake.made();
      const result = await cli(["run", "-p", name, "true"], { env: fake.machine(env()).env });
      expect(result.code).toBe(125);
      expect(result.stdout).toBe("");
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(firstLine);
      for (const text of contains) expect(result.stderr).toContain(text);
      expect(fake.made()).toBe(made);
      expect(fake.live()).toBe(0);
    });
  });
}
