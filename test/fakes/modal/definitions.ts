/**
 * The fake serves Modal with the SDK's own ts-proto service definitions, so field numbers and
 * codecs match the installed SDK exactly. They live inside the SDK bundle unexported, so we copy
 * the bundle once (per SDK version) with one export line appended. Generated, never committed.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..", "..", "..");
const sdkDir = join(root, "node_modules", "modal");

function generatedPath(): string {
  const version = (JSON.parse(readFileSync(join(sdkDir, "package.json"), "utf8")) as { version: string }).version;
  const dir = join(import.meta.dir, ".generated");
  const file = join(dir, `modal-${version}-definitions.js`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    const bundle = readFileSync(join(sdkDir, "dist", "index.js"), "utf8");
    const extra = "\nexport { ModalClientDefinition as __ModalClientDefinition, TaskCommandRouterDefinition as __TaskCommandRouterDefinition };\n";
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, bundle + extra);
    renameSync(temporary, file);
  }
  return file;
}

// Kept loose on purpose: the fake checks shapes at runtime against the SDK's own codecs.
export type Definition = { name: string; fullName: string; methods: Record<string, { name: string; requestStream: boolean; responseStream: boolean }> };

export async function modalDefinitions(): Promise<{ control: Definition; router: Definition }> {
  const module = (await import(generatedPath())) as { __ModalClientDefinition: Definition; __TaskCommandRouterDefinition: Definition };
  return { control: module.__ModalClientDefinition, router: module.__TaskCommandRouterDefinition };
}
