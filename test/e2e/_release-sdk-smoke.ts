/**
 * Compiled by release-startup.test.ts with the release build flags: loads each provider SDK the
 * package depends on and makes one real call against local servers (HTTP for Daytona and E2B,
 * raw TCP for Modal's gRPC), printing what each call ended with. No top-level await (CommonJS).
 * With SMOKE_IMPORT_ONLY=1 it only imports them.
 */
async function attempt(name: string, call: () => Promise<unknown>, report: Record<string, string>): Promise<void> {
  try {
    await call();
    report[name] = "ok";
  } catch (error) {
    report[name] = `${(error as Error)?.constructor?.name}: ${(error as Error)?.message}`.slice(0, 300);
  }
}

async function main(): Promise<void> {
  if (process.env.SMOKE_IMPORT_ONLY) {
    await Promise.all([import("@daytonaio/sdk"), import("e2b"), import("modal")]);
    process.exit(0);
  }
  const http = process.env.SMOKE_HTTP!;
  const grpc = process.env.SMOKE_GRPC!;
  const report: Record<string, string> = {};
  await attempt("daytona", async () => {
    const { Daytona } = await import("@daytonaio/sdk");
    await new Daytona({ apiKey: "smoke", apiUrl: `${http}/daytona` }).get("smoke-sandbox");
  }, report);
  await attempt("e2b", async () => {
    const { Sandbox } = await import("e2b");
    await Sandbox.create({ apiKey: "e2b_smoke", apiUrl: `${http}/e2b`, requestTimeoutMs: 5000 });
  }, report);
  await attempt("modal", async () => {
    const { ModalClient } = await import("modal");
    const client = new ModalClient({ tokenId: "ak-smoke", tokenSecret: "as-smoke", endpoint: grpc, maxRetries: 0, timeoutMs: 3000 });
    await client.apps.fromName("smoke");
  }, report);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

void main();
