import { UsageError } from "../base/errors";
import { assertHasFilter, destroyRecords, destroySandboxes, listSandboxes, type DestroyResult } from "../core/inventory";
import { defineCommand } from "../cli/command";
import { printJson } from "../cli/output";
import { jsonArg, labelArg, parseLabels, providerArg } from "../cli/args";

export default defineCommand({
  meta: {
    name: "destroy",
    description: "Destroy sandboxes by id or name, or every sandbox matching labels",
    usage: "sandboxes destroy ID|NAME… [-p NAME] | sandboxes destroy --all [-l key=value] [-p NAME] [--yes]",
  },
  args: {
    ...providerArg,
    all: { type: "boolean", description: "Destroy every sandbox matching -l (and -p)" },
    ...labelArg,
    yes: { type: "boolean", alias: "y", description: "Do not ask for confirmation (required without a terminal)" },
    ...jsonArg,
  },
  toOptions(args) {
    assertHasFilter(args.all, args._);
    const labels = parseLabels(args.label);
    if (!args.all && Object.keys(labels).length) throw new UsageError("conflicting_arguments", "-l selects sandboxes only together with --all");
    return { refs: args._, all: args.all, labels, provider: args.provider, yes: args.yes, json: args.json };
  },
  async run(options, { io, settings }) {
    let result: DestroyResult;
    if (options.all) {
      const { sandboxes, warnings } = await listSandboxes(settings, { provider: options.provider, labels: options.labels });
      for (const warning of warnings) io.ui().warn(`${warning.provider}: ${warning.message}`);
      if (sandboxes.length && !options.yes) {
        if (!io.stdin.isTTY || !io.stderr.isTTY || options.json) {
          throw new UsageError("confirmation_required", `refusing to destroy ${sandboxes.length} sandbox(es) without confirmation: add --yes`);
        }
        if (!(await io.confirm(`Destroy ${sandboxes.length} sandbox(es)? ${sandboxes.map((s) => s.id).join(", ")}`, false))) {
          io.ui().info("nothing destroyed");
          return 1;
        }
      }
      result = await destroyRecords(settings, sandboxes);
    } else {
      result = await destroySandboxes(settings, [...options.refs], options.provider);
    }
    if (options.json) {
      await printJson(io, { destroyed: result.destroyed, failed: result.failed, missing: result.missing.map((m) => m.ref) });
    } else {
      await io.stdout.emit(result.destroyed.map((item) => `${item.id}\n`).join(""));
      // Like `docker rm -f`: a sandbox that is already gone is not a failure, only a note.
      for (const gone of result.missing) io.ui().warn(`${gone.ref}: no such sandbox (already destroyed?), nothing to destroy`);
      for (const failure of result.failed) io.ui().error(`${failure.ref}: ${failure.message}`);
      if (options.all && result.destroyed.length === 0 && result.failed.length === 0) io.ui().info("no matching sandboxes");
    }
    return result.failed.length ? 1 : 0;
  },
});
