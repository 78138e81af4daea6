/**
 * The one fault suite for every cloud provider, through the compiled binary against its fake:
 * transient failures are retried without a second sandbox, lost answers are found again (or
 * refused in one line where the service offers no way to find them), and a spent retry budget is
 * one line and exit 125 with nothing leaked. Cases whose fault the fake cannot inject are skips.
 *
 *   testFaults(CLOUD_FAKES.e2b());
 */
import { beforeEach, describe, expect, test } from "bun:test";
import { cli, keptId, plain } from "../../helpers";
import { type CloudFake, useFake } from "./fakes";

/** The lines of stderr (a hint, when there is one, ends the same line). */
const said = (stderr: string) => stderr.trimEnd().split("\n");

export function testFaults(fake: CloudFake): void {
  const { name, faults: hooks } = fake;
  const run = (args: string[], env = fake.env) => cli(args, { env });
  /** A sandbox kept with label fault=yes; its id. */
  const keep = async () => keptId((await run(["run", "-p", name, "--keep", "-l", "fault=yes", "true"])).stderr)!;

  describe(`${name} faults through the compiled binary`, () => {
    useFake(fake);
    beforeEach(() => fake.clearFaults());

    test("transient failures on create are retried and the run succeeds with one sandbox", async () => {
      const [made, attempts] = [fake.made(), fake.createAttempts()];
      hooks.createFails(2);
      const result = await run(["run", "-p", name, "echo fine"]);
      expect(plain(result)).toEqual({ code: 0, stdout: "fine\n", stderr: "" });
      expect(fake.createAttempts() - attempts).toBe(3);
      expect(fake.made() - made).toBe(1);
      expect(fake.live()).toBe(0);
    }, 60_000);

    for (const how of Object.keys(hooks.loseCreateAnswer ?? {})) {
      test(`a create whose answer is lost (${how}) is found again, not repeated`, async () => {
        const made = fake.made();
        hooks.loseCreateAnswer![how]!();
        const once = await run(["run", "-p", name, "echo once"]);
        expect(plain(once)).toEqual({ code: 0, stdout: "once\n", stderr: "" });
        expect(fake.made() - made).toBe(1);
        expect(fake.live()).toBe(0);
        // Kept: the one sandbox made is the one the id names, and destroy leaves none.
        fake.clearFaults();
        hooks.loseCreateAnswer![how]!();
        const kept = await run(["run", "-p", name, "--keep", "--json", "echo twice"]);
        expect(kept.code).toBe(0);
        const document = JSON.parse(kept.stdout) as { sandbox_id: string; stdout: string };
        expect(document.stdout).toBe("twice\n");
        expect(fake.made() - made).toBe(2);
        expect(fake.live()).toBe(1);
        expect((await run(["destroy", "-p", name, document.sandbox_id])).code).toBe(0);
        expect(fake.live()).toBe(0);
      }, 60_000);
    }

    test.skipIf(!hooks.loseEveryCreateAnswer || !hooks.findsLostCreate)("every create attempt loses its answer: still never two sandboxes", async () => {
      const made = fake.made();
      hooks.loseEveryCreateAnswer!();
      const result = await run(["run", "-p", name, "echo recovered"]);
      expect(plain(result)).toEqual({ code: 0, stdout: "recovered\n", stderr: "" });
      expect(fake.made() - made).toBe(1);
      expect(fake.live()).toBe(0);
    }, 60_000);

    test.skipIf(!hooks.loseEveryCreateAnswer || hooks.findsLostCreate !== false)("a create whose answer is lost is not repeated: one line saying to look, never two sandboxes", async () => {
      const made = fake.made();
      hooks.loseEveryCreateAnswer!();
      const result = await run(["run", "-p", name, "echo once"]);
      expect(result.code).toBe(125);
      expect(result.stdout).toBe("");
      const lines = said(result.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(hooks.budget.firstLine);
      expect(result.stderr).toContain(`sandboxes list -p ${name}`);
      expect(fake.made() - made).toBe(1);
      // The one the service made anyway is what `list` shows and `destroy --all` removes.
      fake.clearFaults();
      expect((await run(["destroy", "-p", name, "--all", "--yes"])).code).toBe(0);
      expect(fake.live()).toBe(0);
    }, 60_000);

    test.skipIf(!hooks.slowCreate)("a slow answer within the request timeout is simply waited for", async () => {
      hooks.slowCreate!();
      expect(plain(await run(["run", "-p", name, "echo patient"]))).toEqual({ code: 0, stdout: "patient\n", stderr: "" });
      expect(fake.live()).toBe(0);
    }, 60_000);

    test.skipIf(!hooks.listFails)("transient failures on list are retried", async () => {
      const id = await keep();
      const lists = fake.lists();
      hooks.listFails!();
      const listed = await run(["list", "-p", name, "-l", "fault=yes", "--json"]);
      expect(listed.code).toBe(0);
      // Both injected failures were met, then a list went through.
      expect(fake.lists() - lists).toBeGreaterThanOrEqual(3);
      expect((JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id)).toEqual([id]);
      expect((await run(["destroy", "-p", name, id])).code).toBe(0);
    }, 60_000);

    test.skipIf(!hooks.listAlwaysFails)("a list that keeps failing is one line too (exit 1 for list)", async () => {
      hooks.listAlwaysFails!.inject();
      const result = await run(["list", "-p", name]);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(said(result.stderr)).toHaveLength(1);
      expect(result.stderr).toStartWith(hooks.listAlwaysFails!.firstLine);
      expect(result.stderr).toContain(hooks.listAlwaysFails!.status);
    }, 60_000);

    test.skipIf(!hooks.execFails)("a transient failure on the way to a command is retried and the command runs once", async () => {
      const id = await keep();
      hooks.execFails!(id);
      const file = `/tmp/sandboxes-fault-${Math.random().toString(36).slice(2)}`;
      const exec = await run(["exec", "-p", name, id, `echo ran >> ${file}; cat ${file}; echo here >&2`]);
      expect(plain(exec)).toEqual({ code: 0, stdout: "ran\n", stderr: "here\n" });
      expect((await run(["destroy", "-p", name, id])).code).toBe(0);
      expect(fake.live()).toBe(0);
    }, 60_000);

    // Only where the provider retries an upload by reading its archive again (E2B, Sprites,
    // Daytona): the others read it once (whole, in parts, or into a command's stdin) and have
    // nothing to re-read.
    if (hooks.uploadFails) test("an upload that fails on the way is sent again from its start; from stdin it cannot be, and cp says so in one line", async () => {
      const id = await keep();
      try {
        const home = fake.env.HOME!;
        await Bun.write(`${home}/retried.txt`, "every byte\n");
        hooks.uploadFails!(id);
        const archive = Bun.spawnSync(["tar", "-c", "-f", "-", "-C", home, "retried.txt"]).stdout;
        const sent = await cli(["cp", "-", `${id}:/tmp`], { env: fake.env, stdin: archive });
        expect(sent).toMatchObject({ code: 1, stdout: "", stderr: "sandboxes: the upload was interrupted, and standard input cannot be read again: run cp again\n" });
        hooks.uploadFails!(id);
        expect((await run(["cp", `${home}/retried.txt`, `${id}:/tmp/retried.txt`])).code).toBe(0);
        expect(plain(await run(["exec", "-p", name, id, "cat /tmp/retried.txt"]))).toEqual({ code: 0, stdout: "every byte\n", stderr: "" });
      } finally {
        await run(["destroy", "-p", name, id]);
      }
    }, 60_000);

    test.skipIf(!hooks.destroyFails)("a 503 on delete is retried", async () => {
      const id = await keep();
      hooks.destroyFails!(id);
      expect((await run(["destroy", "-p", name, id])).code).toBe(0);
      expect(fake.live()).toBe(0);
    }, 60_000);

    test(`after the retry budget: one clear line naming ${name} and the status, exit 125, nothing leaked`, async () => {
      const attempts = fake.createAttempts();
      hooks.createFails(1000);
      const result = await run(["run", "-p", name, "echo never"]);
      expect(result.code).toBe(125);
      expect(result.stdout).toBe("");
      const lines = said(result.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toStartWith(hooks.budget.firstLine);
      expect(lines[0]).toContain(hooks.budget.status);
      expect(result.stderr).not.toContain("    at ");
      expect(fake.createAttempts() - attempts).toBe(4);
      expect(fake.live()).toBe(0);
    }, 60_000);
  });
}
