import { expect, test } from "bun:test";
import { basename, join } from "node:path";

/**
 * A command prefix that runs it in a network namespace of its own with nothing but loopback: a
 * fake's sandbox created with its network blocked really has none (as root, or as a user
 * through a user namespace).
 */
export function offline(blocked: boolean): string[] {
  if (!blocked) return [];
  return process.getuid?.() === 0 ? ["unshare", "--net"] : ["unshare", "--map-root-user", "--net"];
}

/**
 * For a test file whose data names addresses beyond loopback (allow lists, refused flag values):
 * its tests run inside a network namespace this creates, where `lo` is the only interface and
 * carries `addresses`, so whatever were to dial them reaches that namespace's own loopback and no
 * packet can leave the machine. On the host the file holds a single test that re-runs it with
 * `bun test` in there and passes when every test inside does; inside, `tests` defines them.
 */
export function testInOwnNetwork(file: string, addresses: string[], tests: () => void): void {
  if (process.env.SANDBOXES_TEST_OWN_NETWORK === file) return tests();
  test(`${basename(file)}: every test, inside a network namespace of its own (lo: ${addresses.join(", ")})`, async () => {
    const setup = ["ip link set lo up", ...addresses.map((address) => `ip addr add ${address} dev lo`), 'exec "$@"'].join(" && ");
    const child = Bun.spawn([...offline(true), "sh", "-c", setup, "sh", process.execPath, "test", file], {
      cwd: join(import.meta.dir, "..", ".."),
      env: { ...process.env, SANDBOXES_TEST_OWN_NETWORK: file },
      stdout: "inherit",
      stderr: "inherit",
    });
    expect(await child.exited).toBe(0);
  }, 600_000);
}
