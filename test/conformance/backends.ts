/**
 * Where the conformance suite reads what a backend gave a sandbox (suite.ts `Backend`): the
 * Docker Engine's own inspect, or a fake's record of the create request it received (a getter:
 * a fake may start only when the suite does).
 */
import type { FakeDaytona } from "../fakes/daytona/server";
import type { FakeModal } from "../fakes/modal/server";
import type { FakeSprites } from "../fakes/sprites/server";
import type { FakeVercel } from "../fakes/vercel/server";
import type { Backend } from "./suite";

export const dockerBackend: Backend = {
  async resources(id) {
    const response = await fetch(`http://docker/containers/${id}/json`, { unix: "/var/run/docker.sock" } as RequestInit);
    const inspect = (await response.json()) as { HostConfig: { NanoCpus: number; Memory: number } };
    return { cpus: inspect.HostConfig.NanoCpus / 1e9, memoryMb: inspect.HostConfig.Memory / 2 ** 20 };
  },
};

/** Daytona takes whole CPUs and GiB, and those only with an image. */
export const DAYTONA_RESOURCES_IMAGE = "python:3.12-slim";

export const daytonaBackend = (fake: () => FakeDaytona): Backend => ({
  async resources(id) {
    const settings = fake().sandboxes.get(id)!.settings;
    return { cpus: settings.cpu as number, memoryMb: (settings.memory as number) * 1024 };
  },
});

/** Modal's definition carries milli-CPUs and MiB. */
export const modalBackend = (fake: () => FakeModal): Backend => ({
  async resources(id) {
    const resources = fake().sandboxes.get(id)!.resources;
    return { cpus: (resources?.milliCpu ?? 0) / 1000, memoryMb: resources?.memoryMb ?? 0 };
  },
});

export const spritesBackend = (fake: () => FakeSprites): Backend => ({
  async resources(id) {
    const config = fake().sprites.get(id)!.config;
    return { cpus: config.cpus as number, memoryMb: config.ram_mb as number };
  },
});

/** Vercel gives 2048 MB with every vCPU. */
export const vercelBackend = (fake: () => FakeVercel): Backend => ({
  async resources(id) {
    const vcpus = fake().sandboxes.get(id)!.vcpus;
    return { cpus: vcpus, memoryMb: vcpus * 2048 };
  },
});

/**
 * The local provider's backend is the kernel: the sandbox's own cgroups, read back from their
 * files (cpu.max or cpu.cfs_quota_us over cpu.cfs_period_us; memory.max or memory.limit_in_bytes).
 */
export const localBackend = (env: Record<string, string | undefined>): Backend => ({
  async resources(id) {
    const { planLimits } = await import("../../src/providers/local/limits");
    const plan = await planLimits(id, { cpus: 1, memoryMb: 1 }, env);
    const read = async (file: string) => {
      const cgroup = plan.cgroups.find((c) => c.settings.some((s) => s.file === file));
      return cgroup ? (await Bun.file(`${cgroup.dir}/${file}`).text()).trim() : undefined;
    };
    const v2cpu = await read("cpu.max");
    const cpus = v2cpu ? Number(v2cpu.split(" ")[0]) / Number(v2cpu.split(" ")[1]) : Number(await read("cpu.cfs_quota_us")) / Number(await read("cpu.cfs_period_us"));
    const memory = (await read("memory.max")) ?? (await read("memory.limit_in_bytes"));
    return { cpus, memoryMb: Number(memory) / 2 ** 20 };
  },
});
