/**
 * The providers `sandboxes shell` is driven against in a real terminal: local, docker (a test
 * image on this machine's engine) and the fake-backed cloud providers. Each says how to point
 * the binary at it and which sandboxes its backend holds, asked of the backend itself (the
 * fake's state, the engine), never of the code under test.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { FakeDaytona } from "../fakes/daytona/server";
import { startFakeModal, type FakeModal } from "../fakes/modal/server";
import { startFakeSprites, type FakeSprites } from "../fakes/sprites/server";
import { startFakeHopx, type FakeHopx } from "../fakes/hopx/server";
import { startFakeCloudflare, type FakeCloudflare } from "../fakes/cloudflare/server";
import { BUSYBOX, containersLabelled, requireEngine, uniqueLabel } from "./_docker-helpers";
import type { TestHome } from "./_pty-helpers";

export interface PtyProvider {
  /** Extra `shell` arguments for a new sandbox (image, a label to find it by). */
  args: string[];
  /** Environment that points the binary at the backend. */
  env: Record<string, string>;
  /** Ids of the sandboxes the backend holds right now. */
  live(): Promise<string[]>;
  /** The provider resizes the remote PTY (Modal's SDK cannot). */
  resize: boolean;
  /** The image's vi: how to start it without a vimrc, and what it shows while in insert mode. */
  vi: Vi;
  stop(): Promise<void>;
}

const NAMES = ["local", "docker", "e2b", "daytona", "modal", "sprites", "hopx", "cloudflare"] as const;
export type PtyProviderName = (typeof NAMES)[number];

/**
 * Every provider by default; SANDBOXES_PTY_PROVIDERS (comma-separated) narrows the set for a
 * quick run by hand. An unknown name fails rather than testing less than asked.
 */
export function ptyProviderNames(): PtyProviderName[] {
  const wanted = process.env.SANDBOXES_PTY_PROVIDERS?.split(",").map((p) => p.trim()).filter(Boolean);
  if (!wanted) return [...NAMES];
  for (const name of wanted) {
    if (!(NAMES as readonly string[]).includes(name)) throw new Error(`SANDBOXES_PTY_PROVIDERS: unknown provider "${name}" (known: ${NAMES.join(", ")})`);
  }
  return wanted as PtyProviderName[];
}

export interface Vi {
  command: string;
  insertMode: RegExp;
}
/** vim (on this machine and in the fakes): no vimrc, Vim defaults, so showmode is on. */
const VIM: Vi = { command: "vi -u NONE -N", insertMode: /-- INSERT --/ };
/** busybox vi (the docker test image): no flags; its status line starts with I in insert mode. */
const BUSYBOX_VI: Vi = { command: "vi", insertMode: /^I \/tmp\//m };

export async function startPtyProvider(name: PtyProviderName, home: TestHome): Promise<PtyProvider> {
  switch (name) {
    case "local": {
      // The local provider's sandboxes are directories under its state dir.
      const root = join(home.env.XDG_STATE_HOME!, "sandboxes", "local");
      const live = async () => (existsSync(root) ? readdirSync(root) : []);
      return { args: [], env: {}, live, resize: true, vi: VIM, stop: async () => {} };
    }
    case "docker": {
      // Fails loudly when no engine answers: CI runs scripts/ci/docker.sh first.
      await requireEngine();
      const label = uniqueLabel("pty");
      // A stopped container not yet removed still counts: the engine removes it (AutoRemove).
      const live = async () => (await containersLabelled("pty-run", label)).map((c) => c.Id);
      return { args: ["-i", BUSYBOX, "-l", `pty-run=${label}`], env: {}, live, resize: true, vi: BUSYBOX_VI, stop: async () => {} };
    }
    case "e2b": {
      const fake: FakeE2B = await startFakeE2B();
      return { args: [], env: fake.env(), live: async () => [...fake.sandboxes.keys()], resize: true, vi: VIM, stop: () => fake.close() };
    }
    case "daytona": {
      const fake = new FakeDaytona({ apiKey: "pty-key" }).start();
      return {
        args: [],
        env: { DAYTONA_API_KEY: "pty-key", DAYTONA_API_URL: fake.apiUrl },
        live: async () => fake.live().map((s) => s.id),
        resize: true,
        vi: VIM,
        stop: () => fake.stop(),
      };
    }
    case "modal": {
      const fake: FakeModal = await startFakeModal({ tokenId: "ak-pty", tokenSecret: "as-pty" });
      return {
        args: [],
        env: { MODAL_SERVER_URL: fake.url, MODAL_TOKEN_ID: "ak-pty", MODAL_TOKEN_SECRET: "as-pty" },
        live: async () => fake.running().map((s) => s.id),
        resize: false,
        vi: VIM,
        stop: () => fake.stop(),
      };
    }
    case "sprites": {
      const fake: FakeSprites = await startFakeSprites();
      return { args: [], env: fake.env(), live: async () => [...fake.sprites.keys()], resize: true, vi: VIM, stop: () => fake.close() };
    }
    case "hopx": {
      const fake: FakeHopx = await startFakeHopx();
      return { args: [], env: fake.env(), live: async () => [...fake.sandboxes.keys()], resize: true, vi: VIM, stop: () => fake.close() };
    }
    case "cloudflare": {
      // The hand-written Worker here; the real bridge router runs the conformance and e2e tests.
      const fake: FakeCloudflare = await startFakeCloudflare();
      return { args: [], env: fake.env(), live: async () => fake.live(), resize: true, vi: VIM, stop: () => fake.close() };
    }
  }
}
