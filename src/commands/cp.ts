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
    usage: "sandboxes cp SRC DST [-p NAME]   (one side is ID|NAME:/path; - is a tar archive on stdin or stdout)",
    examples: ["sandboxes cp ./src my-box:/work", "sandboxes cp my-box:/work/out.bin ./out.bin", "sandboxes cp my-box:/work/dist - | tar -x -f -", "tar -c -f - src | sandboxes cp - my-box:/work"],
  },
  args: {
    source: { type: "positional", description: "Source: local path or ID|NAME:/path", required: true },
    destination: { type: "positional", description: "Destination: local path or ID|NAME:/path", required: true },
    ...providerArg,
    ...jsonArg,
  },
  toOptions(args, { stdinIsTTY }) {
    const [source, destination, extra] = args._;
    if (!source || !destination) throw new UsageError("missing_argument", "cp needs SRC and DST: sandboxes cp SRC DST");
    if (extra !== undefined) throw new UsageError("too_many_arguments", "cp takes exactly SRC and DST");
    if (source === "-" && stdinIsTTY) throw new UsageError("bad_copy", "cp - reads a tar archive from standard input, which is a terminal: pipe one in, e.g. tar -c -f - DIR | sandboxes cp - BOX:/path");
    if (destination === "-" && args.json) throw new UsageError("bad_copy", "cp SRC - writes the archive on standard output: --json cannot print there too");
    return { source, destination, provider: args.provider, json: args.json };
  },
  async run(options, { io, settings, signal }) {
    if (options.destination === "-" && io.stdout.isTTY) {
      throw new UsageError("bad_copy", "cp SRC - writes a tar archive on standard output, which is a terminal: pipe it, e.g. sandboxes cp BOX:/path - | tar -x -f -");
    }
    const result = await copy(settings, options.source, options.destination, options.provider, signal, { write: io.stdout.write, read: io.stdin.stream });
    // The archive on stdout is the output; anything more would be noise around it.
    if (result.to === "-") return 0;
    const skipped = result.skipped && skippedNotice(result.skipped, result.from);
    if (skipped) io.ui().warn(skipped);
    if (options.json) {
      await printJson(io, { direction: result.direction, sandbox_id: result.sandboxId, provider: result.provider, from: result.from, to: result.to, ...(result.skipped ? { skipped: result.skipped.count } : {}) });
      return 0;
    }
    const from = result.from === "-" ? "standard input" : result.from;
    io.ui().success(`copied ${from} -> ${result.direction === "upload" ? `${result.sandboxId}:` : ""}${result.to}`);
    return 0;
  },
});
