/**
 * --network and --allow-net on each provider whose API can express them: the request each fake
 * received. (Refusals, where an API cannot, are in test/e2e/network-flags.test.ts, through the
 * binary.)
 * The allow-list addresses (203.0.113.7, 198.51.100.0/24, 2001:db8::/32) are data in a create
 * request to a fake on 127.0.0.1, checked as received; no command here dials them, and the Docker
 * cases use only --network none and host. All the same, every test runs in a network namespace
 * of its own whose lo carries them (testInOwnNetwork): nothing could leave the machine.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { daytonaDescriptor } from "../../src/providers/daytona";
import { dockerDescriptor } from "../../src/providers/docker";
import { e2bDescriptor } from "../../src/providers/e2b";
import { modalDescriptor } from "../../src/providers/modal";
import { allowListParts } from "../../src/providers/network";
import type { CreateSpec, NetworkPolicy } from "../../src/providers/types";
import { vercelDescriptor } from "../../src/providers/vercel";
import { FakeDaytona } from "../fakes/daytona/server";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { startFakeModal, type FakeModal } from "../fakes/modal/server";
import { startFakeVercel, type FakeVercel } from "../fakes/vercel/server";
import { testInOwnNetwork } from "../fakes/netns";

testInOwnNetwork(import.meta.path, ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"], () => {
  const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-network-mapping-"));
  const ALLOW: NetworkPolicy = { mode: "default", allow: ["api.example.com", "*.pypi.org", "203.0.113.7", "198.51.100.0/24", "2001:db8::/32"] };
  const spec = (network?: NetworkPolicy): CreateSpec => ({ labels: {}, env: {}, ...(network ? { network } : {}) });

  afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

  test("an allow list splits into host patterns and CIDRs (an address becomes /32 or /128)", () => {
    expect(allowListParts(ALLOW)).toEqual({ hosts: ["api.example.com", "*.pypi.org"], cidrs: ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"] });
    expect(allowListParts({ mode: "default", allow: ["[::1]"] })).toEqual({ hosts: [], cidrs: ["::1/128"] });
    expect(allowListParts(undefined)).toBeUndefined();
    expect(allowListParts({ mode: "default", allow: [] })).toBeUndefined();
    expect(allowListParts({ mode: "none", allow: [] })).toBeUndefined();
  });

  describe("e2b", () => {
    let fake: FakeE2B;
    beforeAll(async () => {
      fake = await startFakeE2B();
    });
    afterAll(async () => {
      await fake.close();
    });

    test("an allow list becomes network.allowOut with everything else in denyOut; default sends neither", async () => {
      const provider = await e2bDescriptor.load({ env: fake.env(), config: {}, stateDir });
      const allowed = await provider.create(spec(ALLOW));
      const plain = await provider.create(spec({ mode: "default", allow: [] }));
      try {
        const [withList, withoutList] = fake.creates.slice(-2);
        expect(withList?.network).toEqual({ allowOut: ["api.example.com", "*.pypi.org", "203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"], denyOut: ["0.0.0.0/0"] });
        expect(withList?.allow_internet_access).toBeUndefined();
        expect(withoutList?.network).toBeUndefined();
        expect(withoutList?.allow_internet_access).toBeUndefined();
      } finally {
        await provider.destroy(allowed.id);
        await provider.destroy(plain.id);
        await provider.close?.();
      }
    });
  });

  describe("daytona", () => {
    const fake = new FakeDaytona({ apiKey: "mapping-key" });
    beforeAll(() => {
      fake.start();
    });
    afterAll(async () => {
      await fake.stop();
    });

    test("CIDRs become networkAllowList (comma-separated); none becomes networkBlockAll", async () => {
      const provider = await daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "mapping-key", DAYTONA_API_URL: fake.apiUrl }, config: {}, stateDir });
      const listed = await provider.create(spec({ mode: "default", allow: ["203.0.113.7", "198.51.100.0/24"] }));
      const cut = await provider.create(spec({ mode: "none", allow: [] }));
      const plain = await provider.create(spec());
      try {
        expect(fake.sandboxes.get(listed.id)?.settings).toMatchObject({ networkAllowList: "203.0.113.7/32,198.51.100.0/24" });
        expect(fake.sandboxes.get(listed.id)?.settings.networkBlockAll).toBeUndefined();
        expect(fake.sandboxes.get(cut.id)?.settings).toMatchObject({ networkBlockAll: true });
        expect(fake.sandboxes.get(cut.id)?.settings.networkAllowList).toBeUndefined();
        expect(fake.sandboxes.get(plain.id)?.settings.networkAllowList).toBeUndefined();
        expect(fake.sandboxes.get(plain.id)?.settings.networkBlockAll).toBeUndefined();
      } finally {
        for (const id of [listed.id, cut.id, plain.id]) await provider.destroy(id);
        await provider.close?.();
      }
    });
  });

  describe("modal", () => {
    let fake: FakeModal;
    beforeAll(async () => {
      fake = await startFakeModal({ tokenId: "ak-map", tokenSecret: "as-map" });
      process.env.MODAL_SERVER_URL = fake.url;
      process.env.MODAL_CONFIG_PATH = join(stateDir, "absent.toml");
    });
    afterAll(async () => {
      await fake.stop();
    });

    // NetworkAccess.NetworkAccessType in Modal's proto: OPEN 1, BLOCKED 2, ALLOWLIST 3.
    const OPEN = 1;
    const BLOCKED = 2;
    const ALLOWLIST = 3;
    const networkAccess = (index: number) => {
      const creates = fake.calls.filter((call) => call.method === "SandboxCreateV2");
      return (creates.at(index)?.request as { definition?: { networkAccess?: unknown } }).definition?.networkAccess;
    };

    test("an allow list becomes an ALLOWLIST network access with CIDRs and domains; none is BLOCKED; default OPEN", async () => {
      const provider = await modalDescriptor.load({ env: { ...process.env, MODAL_TOKEN_ID: "ak-map", MODAL_TOKEN_SECRET: "as-map", HOME: stateDir }, config: {}, stateDir });
      const made = [];
      try {
        made.push(await provider.create(spec(ALLOW)));
        expect(networkAccess(-1)).toMatchObject({ networkAccessType: ALLOWLIST, allowedCidrs: ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"], allowedDomains: ["api.example.com", "*.pypi.org"] });
        made.push(await provider.create(spec({ mode: "none", allow: [] })));
        expect(networkAccess(-1)).toMatchObject({ networkAccessType: BLOCKED });
        made.push(await provider.create(spec()));
        expect(networkAccess(-1)).toMatchObject({ networkAccessType: OPEN });
      } finally {
        for (const sandbox of made) await provider.destroy(sandbox.id);
        await provider.close?.();
      }
    });
  });

  describe("vercel", () => {
    let fake: FakeVercel;
    beforeAll(async () => {
      fake = await startFakeVercel();
    });
    afterAll(async () => {
      await fake.close();
    });

    test("an allow list becomes a networkPolicy with allowed domains and subnets; default sends none", async () => {
      const provider = await vercelDescriptor.load({ env: fake.env(), config: {}, stateDir });
      const listed = await provider.create(spec(ALLOW));
      const plain = await provider.create(spec());
      try {
        const [withList, withoutList] = fake.creates.slice(-2);
        expect(withList?.networkPolicy).toEqual({ allow: ["api.example.com", "*.pypi.org"], subnets: { allow: ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"] } });
        expect(withoutList?.networkPolicy).toBeUndefined();
      } finally {
        await provider.destroy(listed.id);
        await provider.destroy(plain.id);
        await provider.close?.();
      }
    });
  });

  const dockerSocket = "/var/run/docker.sock";
  const hasDocker = existsSync(dockerSocket);

  describe.skipIf(!hasDocker)("docker", () => {
    // No container on the engine's default network here: test containers stay off it.
    test("--network host and none become the container's NetworkMode", async () => {
      const provider = await dockerDescriptor.load({ env: { DOCKER_HOST: `unix://${dockerSocket}` }, config: {}, stateDir });
      const inspect = async (id: string) => {
        const response = await fetch(`http://docker/containers/${id}/json`, { unix: dockerSocket });
        return ((await response.json()) as { HostConfig: { NetworkMode: string } }).HostConfig.NetworkMode;
      };
      const made: string[] = [];
      try {
        for (const mode of ["host", "none"] as const) {
          const sandbox = await provider.create({ ...spec({ mode, allow: [] }), image: "sandboxes-test/busybox" });
          made.push(sandbox.id);
          expect(await inspect(sandbox.id)).toBe(mode);
        }
      } finally {
        for (const id of made) await provider.destroy(id);
        await provider.close?.();
      }
    }, 60_000);
  });
});
