import { listSandboxes } from "../core/inventory";
import { defineCommand } from "../cli/command";
import { formatAge, formatLabels, printJson, renderTable, emitStdout } from "../cli/output";
import { ui } from "../cli/ui";
import { jsonArg, labelArg, parseLabels, providerArg, strings } from "../cli/args";

export default defineCommand({
  meta: { name: "list", description: "List sandboxes across every configured provider", usage: "sandboxes list [-p NAME] [-l key=value] [--json]" },
  args: { ...providerArg, ...labelArg, ...jsonArg },
  async run({ args, settings }) {
    const result = await listSandboxes(settings, { provider: args.provider as string | undefined, labels: parseLabels(strings(args.label)) });
    if (args.json) {
      await printJson({
        sandboxes: result.sandboxes.map((s) => ({ id: s.id, provider: s.provider, name: s.name ?? null, state: s.state, labels: s.labels, created_at: s.createdAt ?? null, image: s.image ?? null })),
        warnings: result.warnings,
      });
      return 0;
    }
    for (const warning of result.warnings) ui().warn(`${warning.provider}: ${warning.message}`);
    if (result.sandboxes.length === 0) {
      ui().info("no sandboxes");
      return 0;
    }
    const rows = result.sandboxes.map((s) => [s.id, s.provider, s.name ?? "-", s.state, formatLabels(s.labels), formatAge(s.createdAt)]);
    await emitStdout(renderTable(["ID", "PROVIDER", "NAME", "STATE", "LABELS", "AGE"], rows));
    return 0;
  },
});
