/**
 * A command prefix that runs it in a network namespace of its own with nothing but loopback: a
 * fake's sandbox created with its network blocked really has none (as root, or as a user
 * through a user namespace).
 */
export function offline(blocked: boolean): string[] {
  if (!blocked) return [];
  return process.getuid?.() === 0 ? ["unshare", "--net"] : ["unshare", "--map-root-user", "--net"];
}
