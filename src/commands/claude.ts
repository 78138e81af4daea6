import { SandboxesError } from "../core/errors";
import { defineCommand } from "./_context";

// Interactive terminals land with their own issue; until then the command says so plainly.
export default defineCommand({
  meta: { name: "claude", description: "Run Claude Code inside a sandbox", usage: "sandboxes claude" },
  runsPrograms: true,
  args: {},
  async run() {
    throw new SandboxesError("not_available", "sandboxes claude is not available in this build yet", "user");
  },
});
