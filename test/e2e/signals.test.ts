/**
 * Ctrl-C and SIGTERM through the compiled binary: the shared suite in suites/signals.ts, for every
 * cloud provider against its fake and for Docker against the real engine. The local provider's
 * signal tests are in run.test.ts.
 */
import { dockerEngine } from "./suites/docker";
import { CLOUD_FAKES } from "./suites/fakes";
import { testSignals } from "./suites/signals";

for (const fake of Object.values(CLOUD_FAKES)) testSignals(fake());
testSignals(dockerEngine());
