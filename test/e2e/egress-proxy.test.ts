/**
 * The egress proxy and bridge of the compiled binary (`__egress-proxy`, `__egress-bridge`), driven
 * by real clients: curl, python (urllib, pip), bun's fetch, git, go and cargo.
 *
 * Everything runs inside a network namespace this file creates (unshare --net --mount --pid, as
 * root, or with a user namespace otherwise): the "public" host 203.0.113.7, the LAN host 10.0.0.5
 * and the metadata service 169.254.169.254 are addresses on that namespace's lo, and names come
 * from a bind-mounted /etc/hosts. No packet leaves it. The namespace's pid 1 dies with `unshare`
 * (--kill-child), which takes every server and the proxy with it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY } from "../helpers";

const root = process.getuid?.() === 0;
const has = (tool: string) => Bun.which(tool) !== null;
const canNamespace = process.platform === "linux" && has("unshare") && has("nsenter") && has("ip") && has("python3") && has("curl") && has("openssl");

const HOSTS = `127.0.0.1 localhost
203.0.113.7 public.example pypi.example git.example cargo.example
10.0.0.5 internal.example
`;

let dir = "";
let namespace: Bun.Subprocess<"ignore", "pipe", "inherit"> | undefined;
const PORT = 3128;
const proxyEnv = () => ({
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: join(dir, "home"),
  // Version managers (pyenv's python3 shim, rustup's cargo) find their installs here, not in HOME.
  PYENV_ROOT: process.env.PYENV_ROOT ?? join(homedir(), ".pyenv"),
  RUSTUP_HOME: process.env.RUSTUP_HOME ?? join(homedir(), ".rustup"),
  HTTP_PROXY: `http://127.0.0.1:${PORT}`,
  HTTPS_PROXY: `http://127.0.0.1:${PORT}`,
  ALL_PROXY: `socks5h://127.0.0.1:${PORT}`,
  NO_PROXY: "localhost,127.0.0.1,::1",
  http_proxy: `http://127.0.0.1:${PORT}`,
  https_proxy: `http://127.0.0.1:${PORT}`,
  all_proxy: `socks5h://127.0.0.1:${PORT}`,
  no_proxy: "localhost,127.0.0.1,::1",
});

/** Runs argv inside the test namespace (its network, mounts and pids). */
async function inside(argv: string[], env: Record<string, string> = proxyEnv(), cwd = dir) {
  const enter = root ? ["nsenter", "-t", String(namespace!.pid), "-n", "-m"] : ["nsenter", "-t", String(namespace!.pid), "-U", "-n", "-m", "--preserve-credentials"];
  const child = Bun.spawn([...enter, `--wd=${cwd}`, ...argv], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

const blockedLog = () => {
  try {
    return readFileSync(join(dir, "blocked.log"), "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line));
  } catch {
    return [];
  }
};

/** A wheel pip can download: a zip with the dist-info files, made by python's zipfile. */
function makeWheel(path: string): void {
  const script = `import zipfile,sys
z=zipfile.ZipFile(sys.argv[1],"w")
z.writestr("demo_pkg/__init__.py","")
z.writestr("demo_pkg-1.0.dist-info/METADATA","Metadata-Version: 2.1\\nName: demo-pkg\\nVersion: 1.0\\n")
z.writestr("demo_pkg-1.0.dist-info/WHEEL","Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
z.writestr("demo_pkg-1.0.dist-info/RECORD","")
z.close()`;
  Bun.spawnSync(["python3", "-c", script, path]);
}

/** A sparse cargo registry with one crate, `demo` 0.1.0. */
async function makeCargoRegistry(www: string): Promise<void> {
  const registry = join(www, "cargo");
  mkdirSync(join(registry, "index", "de", "mo"), { recursive: true });
  mkdirSync(join(registry, "crates", "demo", "0.1.0"), { recursive: true });
  writeFileSync(join(registry, "index", "config.json"), JSON.stringify({ dl: "http://cargo.example/cargo/crates/{crate}/{version}/download" }));
  const archive = new Bun.Archive(
    {
      "demo-0.1.0/Cargo.toml": '[package]\nname = "demo"\nversion = "0.1.0"\nedition = "2021"\n',
      "demo-0.1.0/src/lib.rs": "pub fn answer() -> u32 { 42 }\n",
    },
    { compress: "gzip" },
  );
  const crate = new Uint8Array(await archive.bytes());
  writeFileSync(join(registry, "crates", "demo", "0.1.0", "download"), crate);
  const cksum = createHash("sha256").update(crate).digest("hex");
  writeFileSync(join(registry, "index", "de", "mo", "demo"), `${JSON.stringify({ name: "demo", vers: "0.1.0", deps: [], cksum, features: {}, yanked: false })}\n`);
}

beforeAll(async () => {
  if (!canNamespace) return;
  dir = mkdtempSync(join(tmpdir(), "sandboxes-egress-"));
  const www = join(dir, "www");
  mkdirSync(join(www, "simple", "demo-pkg"), { recursive: true });
  mkdirSync(join(dir, "home"), { recursive: true });
  writeFileSync(join(dir, "hosts"), HOSTS);
  writeFileSync(join(www, "index.html"), "hello from the public stand-in\n");
  writeFileSync(join(www, "big.bin"), new Uint8Array(8 * 1024 * 1024).map((_, i) => i % 251));
  // pip: a PEP 503 simple index with one wheel.
  makeWheel(join(www, "simple", "demo-pkg", "demo_pkg-1.0-py3-none-any.whl"));
  writeFileSync(join(www, "simple", "demo-pkg", "index.html"), '<a href="demo_pkg-1.0-py3-none-any.whl">demo_pkg-1.0-py3-none-any.whl</a>\n');
  // git: a bare repository served as plain files (the dumb HTTP protocol).
  const git = (args: string[], cwd: string) => Bun.spawnSync(["git", ...args], { cwd, env: { ...process.env, GIT_AUTHOR_NAME: "t", GIT_AUTHOR_EMAIL: "t@t", GIT_COMMITTER_NAME: "t", GIT_COMMITTER_EMAIL: "t@t" } });
  const work = join(dir, "repo-work");
  mkdirSync(work);
  writeFileSync(join(work, "README"), "cloned through the proxy\n");
  git(["init", "-q", "-b", "main"], work);
  git(["add", "README"], work);
  git(["commit", "-qm", "first"], work);
  git(["clone", "-q", "--bare", work, join(www, "repo.git")], dir);
  git(["update-server-info"], join(www, "repo.git"));
  if (has("cargo")) await makeCargoRegistry(www);
  // TLS: a self-signed certificate for public.example.
  Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=public.example", "-addext", "subjectAltName=DNS:public.example", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stderr: "ignore" });
  writeFileSync(
    join(dir, "tls.ts"),
    `Bun.serve({ hostname: "203.0.113.7", port: 443, tls: { cert: Bun.file(${JSON.stringify(join(dir, "cert.pem"))}), key: Bun.file(${JSON.stringify(join(dir, "key.pem"))}) }, fetch: () => new Response("hello over tls\\n") });`,
  );
  writeFileSync(
    join(dir, "setup.sh"),
    `set -eu
ip link set lo up
ip addr add 203.0.113.7/32 dev lo
ip addr add 10.0.0.5/32 dev lo
ip addr add 169.254.169.254/32 dev lo
mount --bind ${dir}/hosts /etc/hosts
python3 -m http.server 80 --bind 203.0.113.7 --directory ${www} >/dev/null 2>&1 &
python3 -m http.server 5432 --bind 10.0.0.5 --directory ${www} >/dev/null 2>&1 &
python3 -m http.server 80 --bind 169.254.169.254 --directory ${www} >/dev/null 2>&1 &
${process.execPath} ${dir}/tls.ts &
${BINARY} __egress-proxy ${dir}/proxy.sock --blocked-log ${dir}/blocked.log > ${dir}/proxy.out &
${BINARY} __egress-proxy ${dir}/listed.sock --allow public.example:80 --allow 10.0.0.5:5432 --allow '*.example.org' > ${dir}/listed.out &
until grep -q listening ${dir}/proxy.out 2>/dev/null; do sleep 0.02; done
${BINARY} __egress-bridge ${PORT} ${dir}/proxy.sock > ${dir}/bridge.out &
until grep -q listening ${dir}/bridge.out 2>/dev/null && grep -q listening ${dir}/listed.out 2>/dev/null; do sleep 0.02; done
for url in http://203.0.113.7/ http://10.0.0.5:5432/ http://169.254.169.254/; do
  until curl -s --noproxy '*' -o /dev/null "$url"; do sleep 0.02; done
done
until curl -s --noproxy '*' -k -o /dev/null https://203.0.113.7/; do sleep 0.02; done
echo ready
wait
`,
  );
  const unshare = ["unshare", ...(root ? [] : ["-r"]), "--net", "--mount", "--pid", "--fork", "--kill-child", "bash", join(dir, "setup.sh")];
  const started = Bun.spawn(unshare, { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  namespace = started;
  const reader = started.stdout.getReader();
  let seen = "";
  while (!seen.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the test namespace did not start: ${seen}`);
    seen += new TextDecoder().decode(value);
  }
  reader.releaseLock();
}, 60_000);

afterAll(async () => {
  if (namespace) {
    // unshare ignores SIGTERM while it waits; SIGKILL takes its child (--kill-child) and the pid namespace with it.
    namespace.kill("SIGKILL");
    await namespace.exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!canNamespace)("egress proxy through the compiled binary", () => {
  test("curl fetches a public host over HTTP through the HTTP proxy", async () => {
    const result = await inside(["curl", "-sS", "http://public.example/"]);
    expect(result).toEqual({ code: 0, stdout: "hello from the public stand-in\n", stderr: "" });
  });

  test("curl fetches a public host over HTTPS through a CONNECT tunnel, certificate verified", async () => {
    const result = await inside(["curl", "-sS", "--cacert", join(dir, "cert.pem"), "https://public.example/"]);
    expect(result).toEqual({ code: 0, stdout: "hello over tls\n", stderr: "" });
  });

  test("curl fetches through SOCKS5 with names resolved by the proxy (socks5h), HTTP and HTTPS", async () => {
    const plain = await inside(["curl", "-sS", "-x", `socks5h://127.0.0.1:${PORT}`, "http://public.example/"]);
    expect(plain).toEqual({ code: 0, stdout: "hello from the public stand-in\n", stderr: "" });
    const tls = await inside(["curl", "-sS", "-x", `socks5h://127.0.0.1:${PORT}`, "--cacert", join(dir, "cert.pem"), "https://public.example/"]);
    expect(tls).toEqual({ code: 0, stdout: "hello over tls\n", stderr: "" });
  });

  test("8 MiB passes through the proxy byte for byte", async () => {
    const result = await inside(["sh", "-c", "curl -sS http://public.example/big.bin | sha256sum"]);
    const expected = createHash("sha256").update(readFileSync(join(dir, "www", "big.bin"))).digest("hex");
    expect(result.stdout.split(" ")[0]).toBe(expected);
  });

  test("a private address is refused with 403 and the line naming the flag", async () => {
    const result = await inside(["curl", "-sS", "-w", "%{http_code}", "http://10.0.0.5:5432/"]);
    expect(result.stdout).toBe("sandboxes: blocked 10.0.0.5:5432 (private address); allow it with --allow-net 10.0.0.5:5432\n403");
  });

  test("a name that resolves to a private address is refused, over CONNECT too", async () => {
    const result = await inside(["curl", "-sS", "-w", "%{http_code}", "http://internal.example:5432/"]);
    expect(result.stdout).toBe("sandboxes: blocked internal.example:5432 (resolves to 10.0.0.5, a private address); allow it with --allow-net internal.example:5432\n403");
    const tunnel = await inside(["curl", "-sS", "-p", "-x", `http://127.0.0.1:${PORT}`, "http://internal.example:443/"]);
    expect(tunnel.code).toBe(56);
    expect(tunnel.stderr).toContain("403");
  });

  test("the metadata service is refused, through SOCKS5 with reply 2 (not allowed by ruleset)", async () => {
    const result = await inside(["curl", "-sS", "-x", `socks5h://127.0.0.1:${PORT}`, "http://169.254.169.254/"]);
    expect(result.code).toBe(97);
    expect(result.stderr).toContain("(2)");
  });

  test("the host's loopback is refused", async () => {
    const result = await inside(["curl", "-sS", "-w", "%{http_code}", "--noproxy", "", "-x", `http://127.0.0.1:${PORT}`, "http://127.0.0.1:9/"]);
    expect(result.stdout).toBe("sandboxes: blocked 127.0.0.1:9 (loopback address); allow it with --allow-net 127.0.0.1:9\n403");
  });

  test("the bridge serves a socket that already listens, handed to it on stdin (`__egress-bridge stdin`), from the first connection queued on it", async () => {
    // perl listens, then hands the socket to the bridge and prints its pid; curl connects at once.
    const handOver = `socket($l, 2, 1, 0) && bind($l, pack("S n C4 x8", 2, 3129, 127, 0, 0, 1)) && listen($l, 16) or die "$!"; defined($pid = fork) or die "$!"; if (!$pid) { open(STDIN, "<&", $l); open(STDOUT, ">", "/dev/null"); exec @ARGV } print "$pid\\n"`;
    const script = `pid=$(perl -e '${handOver}' ${BINARY} __egress-bridge stdin ${dir}/proxy.sock) && curl -sS -x http://127.0.0.1:3129 http://public.example/; kill $pid`;
    const result = await inside(["sh", "-c", script]);
    expect(result).toEqual({ code: 0, stdout: "hello from the public stand-in\n", stderr: "" });
  });

  test("a bridge given a program's pid serves while the program runs and exits 0 once it is gone (`__egress-bridge PORT SOCKET PID`)", async () => {
    const out = join(dir, "bridge-while.out");
    const script = `sleep 1.5 & program=$!
${BINARY} __egress-bridge 3130 ${dir}/proxy.sock $program > ${out} & bridge=$!
until grep -q listening ${out} 2>/dev/null; do sleep 0.02; done
curl -sS -x http://127.0.0.1:3130 http://public.example/
kill -0 $program && echo "program still runs"
wait $program
wait $bridge; echo "bridge exited $?"`;
    const result = await inside(["sh", "-c", script]);
    expect(result).toEqual({ code: 0, stdout: "hello from the public stand-in\nprogram still runs\nbridge exited 0\n", stderr: "" });
  }, 20_000);

  test("the bridge refuses a pid that is not a number, with its usage and exit 2", async () => {
    const result = await inside([BINARY, "__egress-bridge", "3131", join(dir, "proxy.sock"), "me"]);
    expect(result).toEqual({ code: 2, stdout: "", stderr: "sandboxes: usage: sandboxes __egress-bridge PORT|stdin SOCKET [PID]\n" });
  });

  test("the blocked log holds one JSON line per blocked destination", async () => {
    await inside(["curl", "-s", "http://10.0.0.5:5432/"]);
    await inside(["curl", "-s", "http://10.0.0.5:5432/"]);
    const events = blockedLog().filter((event) => event.host === "10.0.0.5");
    expect(events).toEqual([{ host: "10.0.0.5", port: 5432, address: "10.0.0.5", reason: "private" }]);
    expect(blockedLog().some((event) => event.host === "internal.example" && event.reason === "private")).toBe(true);
  });

  test("an allow list opens exactly what it lists", async () => {
    const listed = ["curl", "-sS", "--unix-socket", join(dir, "listed.sock")];
    // Over the unix socket directly: curl speaks the HTTP proxy protocol on it via --unix-socket with an absolute URL.
    const publicHost = await inside([...listed, "-w", "%{http_code}", "--request-target", "http://public.example/", "http://public.example/"]);
    expect(publicHost.stdout).toBe("hello from the public stand-in\n200");
    const lan = await inside([...listed, "-w", "%{http_code}", "--request-target", "http://10.0.0.5:5432/", "http://10.0.0.5:5432/"]);
    expect(lan.stdout).toBe("hello from the public stand-in\n200");
    const other = await inside([...listed, "-w", "%{http_code}", "--request-target", "http://203.0.113.7/", "http://203.0.113.7/"]);
    expect(other.stdout).toBe("sandboxes: blocked 203.0.113.7:80 (not in the --allow-net list); allow it with --allow-net 203.0.113.7:80\n403");
  });

  test("python urllib uses the proxy from the environment (HTTP and HTTPS)", async () => {
    const script = `import urllib.request, ssl
print(urllib.request.urlopen("http://public.example/").read().decode(), end="")
ctx = ssl.create_default_context(cafile=${JSON.stringify(join(dir, "cert.pem"))})
print(urllib.request.urlopen("https://public.example/", context=ctx).read().decode(), end="")`;
    const result = await inside(["python3", "-c", script]);
    expect(result).toEqual({ code: 0, stdout: "hello from the public stand-in\nhello over tls\n", stderr: "" });
  });

  test.skipIf(!has("pip3"))("pip downloads a wheel from an index through the proxy", async () => {
    const out = join(dir, "pip-out");
    const result = await inside(["python3", "-m", "pip", "download", "--disable-pip-version-check", "--no-cache-dir", "--index-url", "http://pypi.example/simple/", "--trusted-host", "pypi.example", "--no-deps", "-d", out, "demo-pkg"]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    expect(readFileSync(join(out, "demo_pkg-1.0-py3-none-any.whl")).length).toBeGreaterThan(0);
  }, 60_000);

  test("bun's fetch honours HTTP_PROXY", async () => {
    const result = await inside([process.execPath, "-e", 'process.stdout.write(await (await fetch("http://public.example/")).text())']);
    expect(result).toEqual({ code: 0, stdout: "hello from the public stand-in\n", stderr: "" });
  });

  test("git clones over HTTP through the proxy", async () => {
    const target = join(dir, "clone");
    const result = await inside(["git", "clone", "-q", "http://git.example/repo.git", target]);
    expect(result.code).toBe(0);
    expect(readFileSync(join(target, "README"), "utf8")).toBe("cloned through the proxy\n");
  });

  test.skipIf(!has("go"))("a go program's net/http client honours HTTP_PROXY and HTTPS_PROXY", async () => {
    const program = join(dir, "goclient");
    mkdirSync(program, { recursive: true });
    writeFileSync(
      join(program, "main.go"),
      `package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(os.Args[1])
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, url := range []string{"http://public.example/", "https://public.example/"} {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		fmt.Print(string(body))
	}
}
`,
    );
    const build = Bun.spawnSync(["go", "build", "-o", join(program, "client"), join(program, "main.go")], { env: { ...process.env, GOFLAGS: "-mod=mod", GO111MODULE: "off" }, stderr: "pipe" });
    expect(build.exitCode).toBe(0);
    const result = await inside([join(program, "client"), join(dir, "cert.pem")]);
    expect(result).toEqual({ code: 0, stdout: "hello from the public stand-in\nhello over tls\n", stderr: "" });
  }, 120_000);

  test.skipIf(!has("cargo"))("cargo fetches a crate from a sparse registry through the proxy", async () => {
    const project = join(dir, "cargo-project");
    const cargoHome = join(dir, "cargo-home");
    mkdirSync(join(project, "src"), { recursive: true });
    mkdirSync(cargoHome, { recursive: true });
    writeFileSync(join(cargoHome, "config.toml"), '[registries.standin]\nindex = "sparse+http://cargo.example/cargo/index/"\n');
    writeFileSync(join(project, "Cargo.toml"), '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\ndemo = { version = "0.1.0", registry = "standin" }\n');
    writeFileSync(join(project, "src", "main.rs"), "fn main() { println!(\"{}\", demo::answer()); }\n");
    const result = await inside(["cargo", "fetch", "-q"], { ...proxyEnv(), CARGO_HOME: cargoHome }, project);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(readFileSync(join(project, "Cargo.lock"), "utf8")).toContain('name = "demo"');
  }, 60_000);
});
