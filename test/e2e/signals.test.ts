/**
 * Ctrl-C and SIGTERM, for every cloud provider through the compiled binary against its fake: the
 * shared suite in suites/signals.ts. Docker's signal tests run against the real engine in
 * docker.test.ts, the local provider's in run.test.ts.
 */
import { testSignals } from "./suites/signals";
import { CLOUD_FAKES } from "./suites/fakes";

for (const fake of Object.values(CLOUD_FAKES)) testSignals(fake());
