import { UsageError } from "../base/errors";
import { assertHasFilter, destroyRecords, destroySandboxes, listSandboxes, type DestroyResult } from "../core/inventory";
import { defineCommand } from "../cli/command";
import { printJson, emitStdout } from "../cli/output";
import { ui } from "../cli/ui";
import { jsonArg, labelArg, parseLabels, providerArg, strings } from "../cli/args";
import { isTerminal } from "../cli/stdio";

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
  async run({ args, settings }) {
    const refs = args._;
    const all = Boolean(args.all);
    assertHasFilter(all, refs);
    const labels = parseLabels(strings(args.label));
    if (!all && Object.keys(labels).length) throw new UsageError("conflicting_arguments", "-l selects sandboxes only together with --all");
    let result: DestroyResult;
    if (all) {
      const { sandboxes, warnings } = await listSandboxes(settings, { provider: args.provider as string | undefined, labels });
      for (const warning of warnings) ui().warn(`${warning.provider}: ${warning.message}`);
      if (sandboxes.length && !args.yes) {
        if (!isTerminal(0) || !isTerminal(2) || args.json) {
          throw new UsageError("confirmation_required", `refusing to destroy ${sandboxes.length} sandbox(es) without confirmation: add --yes`);
        }
        const { confirm, isCancel } = await import("@clack/prompts");
        const answer = await confirm({ message: `Destroy ${sandboxes.length} sandbox(es)? ${sandboxes.map((s) => s.id).join(", ")}`, initialValue: false });
        if (isCancel(answer) || !answer) {
          ui().info("nothing destroyed");
          return 1;
        }
      }
      result = await destroyRecords(settings, sandboxes);
    } else {
      result = await destroySandboxes(settings, refs, args.provider as string | undefined);
    }
    if (args.json) {
      await printJson({ destroyed: result.destroyed, failed: result.failed, missing: result.missing.map((m) => m.ref) });
    } else {
      await emitStdout(result.destroyed.map((item) => `${item.id}\n`).join(""));
      // Like `docker rm -f`: a sandbox that is already gone is not a failure, only a note.
      for (const gone of result.missing) ui().warn(`${gone.ref}: no such sandbox (already destroyed?), nothing to destroy`);
      for (const failure of result.failed) ui().error(`${failure.ref}: ${failure.message}`);
      if (all && result.destroyed.length === 0 && result.failed.length === 0) ui().info("no matching sandboxes");
    }
    return result.failed.length ? 1 : 0;
  },
});
