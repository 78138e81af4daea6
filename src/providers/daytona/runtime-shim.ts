/**
 * @daytonaio/sdk loads `form-data` (uploads) and `busboy` (downloads) through a runtime
 * `require` alias (its utils/Import.js) that `bun build --compile` cannot see, so a compiled
 * binary lacks them: "Module "form-data" is not available in the "bun" runtime". Importing them
 * here makes the bundler include them, and a runtime plugin answers the SDK's require with them.
 * Each virtual module exports only `default`: the SDK's unwrapInterop keeps a module with named
 * exports as is, and its validation wants the bare function.
 */
import { plugin } from "bun";
import FormDataPackage from "form-data";
// @ts-expect-error busboy ships no types and we only hand the function on.
import busboy from "busboy";

let registered = false;

export function registerDaytonaRuntimeModules(): void {
  if (registered) return;
  registered = true;
  plugin({
    name: "daytona-sdk-runtime-requires",
    setup(build) {
      build.module("form-data", () => ({ loader: "object", exports: { default: FormDataPackage } }));
      build.module("busboy", () => ({ loader: "object", exports: { default: busboy } }));
    },
  });
}
