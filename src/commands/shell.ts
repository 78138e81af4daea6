import { SandboxesError } from "../core/errors";
import { defineCommand } from "./_context";

// Interactive terminals land with their own issue; until then the command says so plainly.
export default defineCommand({
  meta: { name: "shell", description: "Open an interactive shell in a sandbox", usage: "sandboxes shell" },
  runsPrograms: true,
  args: {},
  async run() {
    throw new SandboxesError("not_available", "sandboxes shell is not available in this build yet", "user");
  },
});
