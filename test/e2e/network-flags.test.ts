/**
 * --network and --allow-net through the compiled binary: bad values, and each provider refusing,
 * with one line and exit 125, what its API cannot express, before anything is created (each
 * fake shows no create). The mappings themselves: test/providers/network-mapping.test.ts.
 * The addresses here (10.0.0.0/8, 203.0.113.0/24) are flag values that are refused before any
 * sandbox exists. All the same, every test runs in a network namespace of its own whose lo
 * carries them (testInOwnNetwork), so nothing could leave the machine even if one were dialled.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, rmSync } from "node:fs";
import { startFakeCloudflare, type FakeCloudflare } from "../fakes/cloudflare/server";
import { FakeDaytona } from "../fakes/daytona/server";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { startFakeHopx, type FakeHopx } from "../fakes/hopx/server";
import { startFakeModal, type FakeModal } from "../fakes/modal/server";
import { startFakeSprites, type FakeSprites } from "../fakes/sprites/server";
import { startFakeVercel, type FakeVercel } from "../fakes/vercel/server";
import { cli, freshEnv, plain } from "../helpers";
import { testInOwnNetwork } from "../fakes/netns";

testInOwnNetwork(import.meta.path, ["10.0.0.0/8", "203.0.113.0/24"], () => {
  const machine = freshEnv();
  afterAll(() => rmSync(machine.home, { recursive: true, force: true }));

  const refused = (line: string) => ({ code: 125, stdout: "", stderr: `sandboxes: ${line}\n` });

  describe("flag values", () => {
    test("an unknown --network is refused with the accepted values", async () => {
      expect(plain(await cli(["run", "--network", "bridge", "true"], machine))).toEqual(refused('--network must be default, none or host, got "bridge"'));
    });

    test("a malformed --allow-net entry is refused naming the entry and the accepted forms", async () => {
      expect(plain(await cli(["run", "--allow-net", "http://example.com/", "true"], machine))).toEqual(refused("--allow-net http://example.com/: the port must be a number from 1 to 65535"));
      expect(plain(await cli(["run", "--allow-net", "10.0.0.0/40", "true"], machine))).toEqual(refused('--allow-net 10.0.0.0/40: the prefix length after "/" must be 0 to 32'));
      expect(plain(await cli(["run", "--allow-net", "exa mple.com", "true"], machine))).toEqual(
        refused("--allow-net exa mple.com: expected a hostname, *.domain, an IP address or a CIDR, with an optional :PORT"),
      );
    });

    test("--allow-net with --network none or host is refused", async () => {
      expect(plain(await cli(["run", "--network", "none", "--allow-net", "example.com", "true"], machine))).toEqual(refused("--allow-net cannot be combined with --network none: drop one of them"));
      expect(plain(await cli(["run", "--network", "host", "--allow-net", "example.com", "true"], machine))).toEqual(refused("--allow-net cannot be combined with --network host: drop one of them"));
    });

    test.skipIf(process.platform !== "linux")("--network host on local runs, with a one-line warning", async () => {
      const result = await cli(["run", "-p", "local", "--network", "host", "echo ran"], machine);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe("ran\n");
      expect(result.stderr).toContain("warning: --network host shares this machine's network with the sandbox\n");
      expect(result.stderr.trim().split("\n")).toHaveLength(1);
    });
  });

  describe("refusals on providers whose API cannot express the policy, before any create", () => {
    let e2b: FakeE2B;
    let daytona: FakeDaytona;
    let modal: FakeModal;
    let vercel: FakeVercel;
    let sprites: FakeSprites;
    let hopx: FakeHopx;
    let cloudflare: FakeCloudflare;
    let env: Record<string, string>;

    beforeAll(async () => {
      [e2b, modal, vercel, sprites, hopx, cloudflare] = await Promise.all([startFakeE2B(), startFakeModal(), startFakeVercel(), startFakeSprites(), startFakeHopx(), startFakeCloudflare({ mode: "bridge" })]);
      daytona = new FakeDaytona({ apiKey: "flags-key" }).start();
      env = {
        ...machine.env,
        ...e2b.env(),
        ...vercel.env(),
        ...sprites.env(),
        ...hopx.env(),
        ...cloudflare.env(),
        DAYTONA_API_KEY: "flags-key",
        DAYTONA_API_URL: daytona.apiUrl,
        ...modal.env(),
        MODAL_CONFIG_PATH: `${machine.home}/absent.toml`,
      };
    });

    afterAll(async () => {
      await Promise.all([e2b.close(), modal.stop(), vercel.close(), sprites.close(), hopx.close(), cloudflare.close(), daytona.stop()]);
    });

    const cases: Array<[string, string[], string]> = [
      ["e2b", ["--allow-net", "example.com:443"], "provider e2b cannot limit --allow-net to a port (example.com:443): drop the :PORT"],
      ["e2b", ["--network", "host"], "provider e2b cannot share this machine's network (--network host): use -p local or -p docker"],
      ["daytona", ["--allow-net", "example.com"], "provider daytona cannot allow host names (--allow-net example.com): list IP addresses or CIDRs instead"],
      ["daytona", ["--allow-net", "203.0.113.0/24:443"], "provider daytona cannot limit --allow-net to a port (203.0.113.0/24:443): drop the :PORT"],
      ["modal", ["--allow-net", "*.example.com:8443"], "provider modal cannot limit --allow-net to a port (*.example.com:8443): drop the :PORT"],
      ["modal", ["--network", "host"], "provider modal cannot share this machine's network (--network host): use -p local or -p docker"],
      ["vercel", ["--allow-net", "[2001:db8::1]:443"], "provider vercel cannot limit --allow-net to a port ([2001:db8::1]:443): drop the :PORT"],
      ["sprites", ["--network", "none"], "provider sprites cannot cut a sandbox off the network (--network none): use -p local or -p docker"],
      ["sprites", ["--allow-net", "example.com"], "provider sprites cannot allow host names (--allow-net example.com): `sandboxes providers` shows which providers can (networkAllowHosts, networkAllowCidrs)"],
      ["hopx", ["--allow-net", "10.0.0.0/8"], "provider hopx cannot allow IP addresses or CIDRs (--allow-net 10.0.0.0/8): `sandboxes providers` shows which providers can (networkAllowHosts, networkAllowCidrs)"],
      ["hopx", ["--network", "host"], "provider hopx cannot share this machine's network (--network host): use -p local or -p docker"],
      ["cloudflare", ["--network", "none"], "provider cloudflare cannot cut a sandbox off the network (--network none): use -p local or -p docker"],
      ["cloudflare", ["--allow-net", "example.com"], "provider cloudflare cannot allow host names (--allow-net example.com): `sandboxes providers` shows which providers can (networkAllowHosts, networkAllowCidrs)"],
    ];
    for (const [provider, flags, line] of cases) {
      test(`${provider} ${flags.join(" ")}: one line, exit 125`, async () => {
        expect(plain(await cli(["run", "-p", provider, ...flags, "true"], { env }))).toEqual(refused(line));
      });
    }

    test("no provider received a create", () => {
      expect(e2b.creates).toEqual([]);
      expect(daytona.sandboxes.size).toBe(0);
      expect(modal.calls.filter((call) => call.method === "SandboxCreateV2")).toEqual([]);
      expect(vercel.creates).toEqual([]);
      expect(sprites.creates).toEqual([]);
      expect(hopx.creates).toEqual([]);
      expect(cloudflare.issued).toEqual([]);
    });
  });

  const dockerSocket = "/var/run/docker.sock";

  describe.skipIf(!existsSync(dockerSocket))("docker", () => {
    const containers = async () => {
      const response = await fetch(`http://docker/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: ["sandboxes.managed"] }))}`, { unix: dockerSocket });
      return ((await response.json()) as Array<{ Id: string }>).map((c) => c.Id).sort();
    };

    test("an allow list is refused in one line, and no container is made", async () => {
      const before = await containers();
      // A local image: were the check to fail, nothing would be pulled.
      const result = await cli(["run", "-p", "docker", "--image", "sandboxes-test/busybox", "--allow-net", "example.com", "true"], { env: { ...machine.env, DOCKER_HOST: `unix://${dockerSocket}` } });
      expect(plain(result)).toEqual(refused("provider docker cannot allow host names (--allow-net example.com): `sandboxes providers` shows which providers can (networkAllowHosts, networkAllowCidrs)"));
      expect(await containers()).toEqual(before);
    });
  });
});
