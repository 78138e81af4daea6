import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerDescriptor } from "../../src/providers/docker";
import { testProvider } from "./suite";

// Needs a running engine and the offline test images: run scripts/ci/docker.sh first.
// Deliberately no skip: an unreachable engine fails every case loudly.
const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-docker-"));
testProvider("docker", () => dockerDescriptor.load({ env: process.env, config: {}, stateDir }), { image: "sandboxes-test/busybox" });
