import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { localDescriptor } from "../../src/providers/local";
import { localBackend } from "./backends";
import { testProvider } from "./suite";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-local-"));
testProvider("local (bubblewrap when installed)", localDescriptor.capabilities, () => localDescriptor.load({ env: process.env, config: {}, stateDir }), {
  backend: localBackend(process.env),
});
testProvider("local (util-linux unshare)", localDescriptor.capabilities, () =>
  localDescriptor.load({ env: { ...process.env, SANDBOXES_LOCAL_ISOLATION: "unshare" }, config: {}, stateDir }),
  { backend: localBackend(process.env) },
);
