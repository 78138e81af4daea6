import { testProviders } from "../core/selftest";
import { defineCommand } from "../cli/command";
import { printJson, renderTable, emitStdout } from "../cli/output";
import { ui } from "../cli/ui";
import { jsonArg, providerArg } from "../cli/args";

const ms = (value?: number) => (value === undefined ? "-" : `${value}ms`);

export default defineCommand({
  meta: { name: "test", description: "Create a sandbox, run a command, check its output and destroy it, for each configured provider", usage: "sandboxes test [-p NAME] [--json]" },
  args: { ...providerArg, ...jsonArg },
  async run({ args, settings }) {
    const checks = await testProviders(settings, args.provider as string | undefined);
    if (args.json) await printJson({ results: checks });
    else {
      await emitStdout(renderTable(["PROVIDER", "RESULT", "CREATE", "EXEC", "DESTROY", "ERROR"], checks.map((c) => [c.provider, c.ok ? "ok" : "FAILED", ms(c.createMs), ms(c.execMs), ms(c.destroyMs), c.error ?? ""])));
      if (checks.length === 0) ui().warn("no provider is configured");
    }
    return checks.every((c) => c.ok) ? 0 : 1;
  },
});
