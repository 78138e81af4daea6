import { listSandboxes } from "../core/inventory";
import { defineCommand } from "../cli/command";
import { formatAge, formatLabels, printJson, renderTable } from "../cli/output";
import { jsonArg, labelArg, parseLabels, providerArg } from "../cli/args";

export default defineCommand({
  meta: { name: "list", description: "List sandboxes across every configured provider", usage: "sandboxes list [-p NAME] [-l key=value] [--json]" },
  args: { ...providerArg, ...labelArg, ...jsonArg },
  toOptions: (args) => ({ provider: args.provider, labels: parseLabels(args.label), json: args.json }),
  async run(options, { io, settings }) {
    const result = await listSandboxes(settings, { provider: options.provider, labels: options.labels });
    if (options.json) {
      await printJson(io, {
        sandboxes: result.sandboxes.map((s) => ({ id: s.id, provider: s.provider, name: s.name ?? null, state: s.state, labels: s.labels, created_at: s.createdAt ?? null, image: s.image ?? null })),
        warnings: result.warnings,
      });
      return 0;
    }
    for (const warning of result.warnings) io.ui().warn(`${warning.provider}: ${warning.message}`);
    if (result.sandboxes.length === 0) {
      io.ui().info("no sandboxes");
      return 0;
    }
    const rows = result.sandboxes.map((s) => [s.id, s.provider, s.name ?? "-", s.state, formatLabels(s.labels), formatAge(s.createdAt)]);
    await io.stdout.emit(renderTable(["ID", "PROVIDER", "NAME", "STATE", "LABELS", "AGE"], rows, io.stdout.isTTY));
    return 0;
  },
});
