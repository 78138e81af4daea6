/**
 * Docker as a target of the shared suites: the real engine (scripts/ci/docker.sh starts it and
 * builds the offline images), asked directly through its API what exists and what was made,
 * never through the binary under test. Every container the suite makes carries one label value,
 * swept when the suite closes.
 */
import { rmSync } from "node:fs";
import { dockerDescriptor } from "../../../src/providers/docker";
import { BUSYBOX, Cli, containersLabelled, engine, requireEngine, SOCKET, uniqueLabel } from "../_docker-helpers";
import type { SignalTarget } from "./signals";

export function dockerEngine(): SignalTarget {
  const mark = uniqueLabel("suite");
  const label = `sandboxes.label.e2e=${mark}`;
  const cli = new Cli();
  const since = Math.floor(Date.now() / 1000) - 1;
  const labelled = () => containersLabelled("e2e", mark);
  return {
    name: "docker",
    capabilities: dockerDescriptor.capabilities,
    start: () => requireEngine(),
    env: cli.env(),
    runArgs: ["--image", BUSYBOX, "-l", `e2e=${mark}`],
    // Running containers count at once; one being stopped or removed is waited for (bounded).
    async live() {
      let containers = await labelled();
      for (let i = 0; i < 150 && containers.some((c) => c.State !== "running"); i++) {
        await Bun.sleep(100);
        containers = await labelled();
      }
      return containers.length;
    },
    // The engine's own record: "create" events of containers with the suite's label.
    async made() {
      const filters = encodeURIComponent(JSON.stringify({ type: ["container"], event: ["create"], label: [label] }));
      const until = Math.floor(Date.now() / 1000) + 1;
      const response = await fetch(`http://docker/events?since=${since}&until=${until}&filters=${filters}`, { unix: SOCKET } as RequestInit);
      return (await response.text()).split("\n").filter((line) => line.trim()).length;
    },
    async close() {
      for (const container of await labelled()) await engine("DELETE", `/containers/${container.Id}?force=true`);
      rmSync(cli.home, { recursive: true, force: true });
    },
  };
}
