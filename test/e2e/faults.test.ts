/**
 * Faults, for every cloud provider through the compiled binary against its fake: the shared
 * suite in suites/faults.ts. A provider's own faults (Modal's dropped output stream, Daytona's
 * upload retries) stay in its own file.
 */
import { testFaults } from "./suites/faults";
import { CLOUD_FAKES } from "./suites/fakes";

for (const fake of Object.values(CLOUD_FAKES)) testFaults(fake());
