/**
 * The operating system the providers serve: `process.platform`, unless SANDBOXES_TEST_PLATFORM
 * names another. That variable is for tests only: it lets the off-Linux defaults (docker as the
 * default provider) be tested on Linux.
 */
export function hostPlatform(env: Record<string, string | undefined>): NodeJS.Platform {
  return (env.SANDBOXES_TEST_PLATFORM as NodeJS.Platform | undefined) || process.platform;
}
