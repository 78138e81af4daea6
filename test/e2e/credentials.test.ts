/**
 * Credentials, for every cloud provider through the compiled binary against its fake: the shared
 * suite in suites/credentials.ts. Other places credentials come from (Modal's ~/.modal.toml) stay
 * in the provider's own file.
 */
import { testCredentials } from "./suites/credentials";
import { CLOUD_FAKES } from "./suites/fakes";

for (const fake of Object.values(CLOUD_FAKES)) testCredentials(fake());
