/**
 * The sandbox-start this process carries (start.ts writes it out), found with Bun's own calls
 * only: `providers` asks for it too, and loads no node: built-in (release-startup.test.ts).
 */
const PREFIX = "sandbox-start";

/** The helper this process carries, its name in bin/, and what the names of its older builds start with. */
export function carriedHelper(): { name: string; family: string; file: Blob } | undefined {
  const embedded = Bun.embeddedFiles.find((file) => (file as Blob & { name?: string }).name?.startsWith(PREFIX));
  if (embedded) {
    // sandbox-start-linux-x64-<hash>.
    const name = (embedded as Blob & { name: string }).name.replace(/\.$/, "");
    return { name, family: name.slice(0, name.lastIndexOf("-") + 1), file: embedded };
  }
  if (process.platform !== "linux") return undefined;
  // A run from the sources: dist/, as `npm run build` leaves it. No error for a missing one
  // (systemDirs says why); Bun gives it size 0.
  const built = Bun.file(`${import.meta.dir}/../../../dist/${PREFIX}-linux-${process.arch}`);
  if (built.size === 0) return undefined;
  return { name: `${PREFIX}-sources-${built.size}-${built.lastModified}`, family: `${PREFIX}-sources-`, file: built };
}
