import { UsageError } from "../base/errors";
import { skippedNotice } from "../core/archive";
import { copy } from "../core/copy";
import { defineCommand } from "../cli/command";
import { printJson } from "../cli/output";
import { jsonArg, providerArg } from "../cli/args";

export default defineCommand({
  meta: {
    name: "cp",
    description: "Copy files or directories between this machine and a sandbox",
    usage: "sandboxes cp SRC DST [-p NAME]   (one side is ID|NAME:/path)",
    examples: ["sandboxes cp ./src my-box:/work", "sandboxes cp my-box:/work/out.bin ./out.bin"],
  },
  args: {
    source: { type: "positional", description: "Source: local path or ID|NAME:/path", required: true },
    destination: { type: "positional", description: "Destination: local path or ID|NAME:/path", required: true },
    ...providerArg,
    ...jsonArg,
  },
  toOptions(args) {
    const [source, destination, extra] = args._;
    if (!source || !destination) throw new UsageError("missing_argument", "cp needs SRC and DST: sandboxes cp SRC DST");
    if (extra !== undefined) throw new UsageError("too_many_arguments", "cp takes exactly SRC and DST");
    return { source, destination, provider: args.provider, json: args.json };
  },
  async run(options, { io, settings, signal }) {
    const result = await copy(settings, options.source, options.destination, options.provider, signal);
    const skipped = result.skipped && skippedNotice(result.skipped, result.from);
    if (skipped) io.ui().warn(skipped);
    if (options.json) {
      await printJson(io, { direction: result.direction, sandbox_id: result.sandboxId, provider: result.provider, from: result.from, to: result.to, ...(result.skipped ? { skipped: result.skipped.count } : {}) });
      return 0;
    }
    io.ui().success(`copied ${result.from} -> ${result.direction === "upload" ? `${result.sandboxId}:` : ""}${result.to}`);
    return 0;
  },
});
