/**
 * Network front ends for the local engine's unix socket, so DOCKER_HOST=tcp:// (plain and with
 * mutual TLS, as `dockerd --tlsverify` serves it) is tested against the real engine.
 * Half-closes pass through: exec stdin EOF depends on them.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Proxy {
  port: number;
  close(): void;
}

function pipeToEngine(client: net.Socket, socketPath: string): void {
  const upstream = net.createConnection({ path: socketPath, allowHalfOpen: true });
  client.pipe(upstream);
  upstream.pipe(client);
  client.on("error", () => upstream.destroy());
  upstream.on("error", () => client.destroy());
}

function listen(server: net.Server): Promise<Proxy> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, close: () => server.close() })),
  );
}

export function tcpProxy(socketPath: string): Promise<Proxy> {
  return listen(net.createServer({ allowHalfOpen: true }, (client) => pipeToEngine(client, socketPath)));
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, as DOCKER_CERT_PATH holds them. */
export function makeCertificates(): string {
  const dir = mkdtempSync(join(tmpdir(), "sandboxes-docker-tls-"));
  const openssl = (...args: string[]) => {
    const result = Bun.spawnSync(["openssl", ...args], { cwd: dir, stderr: "pipe" });
    if (result.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`);
  };
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-subj", "/CN=sandboxes test CA", "-days", "2");
  for (const [name, subject, extension] of [
    ["server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"],
    ["client", "/CN=sandboxes client", "extendedKeyUsage=clientAuth\n"],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), extension);
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", subject);
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-out", `${name}-cert.pem`, "-days", "2", "-extfile", `${name}.ext`);
  }
  // The names the docker CLI (and we) look for in DOCKER_CERT_PATH.
  writeFileSync(join(dir, "cert.pem"), readFileSync(join(dir, "client-cert.pem")));
  writeFileSync(join(dir, "key.pem"), readFileSync(join(dir, "client-key.pem")));
  return dir;
}

/** Mutual TLS like `dockerd --tlsverify`: a client without a certificate from the CA is refused. */
export function tlsProxy(socketPath: string, certDir: string): Promise<Proxy> {
  const read = (name: string) => readFileSync(join(certDir, name));
  const server = tls.createServer(
    { ca: read("ca.pem"), cert: read("server-cert.pem"), key: read("server-key.pem"), requestCert: true, rejectUnauthorized: true, allowHalfOpen: true },
    (client) => pipeToEngine(client, socketPath),
  );
  return listen(server);
}
