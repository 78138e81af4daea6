import { testProviders } from "../core/selftest";
import { defineCommand } from "../cli/command";
import { printJson, renderTable } from "../cli/output";
import { jsonArg, providerArg } from "../cli/args";

const ms = (value?: number) => (value === undefined ? "-" : `${value}ms`);

export default defineCommand({
  meta: { name: "test", description: "Create a sandbox, run a command, check its output and destroy it, for each configured provider", usage: "sandboxes test [-p NAME] [--json]" },
  args: { ...providerArg, ...jsonArg },
  toOptions: (args) => ({ provider: args.provider, json: args.json }),
  async run(options, { io, settings }) {
    const checks = await testProviders(settings, options.provider);
    if (options.json) await printJson(io, { results: checks });
    else {
      await io.stdout.emit(renderTable(["PROVIDER", "RESULT", "CREATE", "EXEC", "DESTROY", "ERROR"], checks.map((c) => [c.provider, c.ok ? "ok" : "FAILED", ms(c.createMs), ms(c.execMs), ms(c.destroyMs), c.error ?? ""]), io.stdout.isTTY));
      if (checks.length === 0) io.ui().warn("no provider is configured");
    }
    return checks.every((c) => c.ok) ? 0 : 1;
  },
});
