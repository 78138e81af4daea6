import { providerReport } from "../core/report";
import type { Capabilities } from "../providers/types";
import { defineCommand } from "../cli/command";
import { printJson, renderTable } from "../cli/output";
import { jsonArg } from "../cli/args";

const capabilityList = (c: Capabilities) => Object.entries(c).filter(([, on]) => on).map(([name]) => name).join(",");

export default defineCommand({
  meta: { name: "providers", description: "Show every provider: configured or not, from where, capabilities, and the default", usage: "sandboxes providers [--json]" },
  args: { ...jsonArg },
  printsDataOnly: true,
  toOptions: (args) => ({ json: args.json }),
  async run(options, { io, settings }) {
    const report = await providerReport(settings);
    if (options.json) {
      await printJson(io, report);
      return 0;
    }
    const rows = report.providers.map((p) => [
      p.name + (p.default ? " (default)" : ""),
      p.configured ? "yes" : "no",
      p.configured ? (p.source ?? "-") : (p.missing ?? "-"),
      capabilityList(p.capabilities),
      p.details ?? p.description,
    ]);
    const table = renderTable(["PROVIDER", "CONFIGURED", "SOURCE / TO CONFIGURE", "CAPABILITIES", "DETAILS"], rows, io.stdout.isTTY);
    await io.stdout.emit(`${table}\ndefault: ${report.default.name ?? "none"} (${report.default.reason})\n`);
    return 0;
  },
});
