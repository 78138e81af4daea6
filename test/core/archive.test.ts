/**
 * unpackTo, the local side of every download (cp, run --download, the library, MCP's files):
 * the archive comes from a sandbox, whose program may have replaced its tar, so these archives
 * are written by hand, header by header, as a hostile tar would.
 */
import { afterAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Header, type HeaderData } from "tar";
import { hostTar, unpackTo } from "../../src/core/archive";

const root = mkdtempSync(join(tmpdir(), "sandboxes-unpack-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** One entry: its 512-byte header, then its content padded to a whole block. */
function entry(header: HeaderData, content: Uint8Array = new Uint8Array()): Uint8Array {
  const block = Buffer.alloc(512);
  new Header({ mode: 0o644, uid: 1000, gid: 1000, mtime: new Date(0), size: content.length, ...header }).encode(block);
  const padded = Buffer.alloc(Math.ceil(content.length / 512) * 512);
  padded.set(content);
  return Buffer.concat([block, padded]);
}

const archive = (...entries: Uint8Array[]): Uint8Array => Buffer.concat([...entries, Buffer.alloc(1024)]);

/** Hands `bytes` over in chunks of `size`, as a provider would, awaiting what each write returns. */
function chunked(bytes: Uint8Array, size: number, waits = { count: 0 }) {
  return async (write: (chunk: Uint8Array) => unknown) => {
    for (let offset = 0; offset < bytes.length; offset += size) {
      const taken = write(bytes.subarray(offset, offset + size));
      if (taken instanceof Promise) {
        waits.count++;
        await taken;
      }
    }
  };
}

test("a hostile archive writes nothing outside the copy, and what it skipped is named", async () => {
  const place = join(root, "hostile");
  const outside = join(root, "outside");
  mkdirSync(place);
  mkdirSync(outside);
  const text = (s: string) => new TextEncoder().encode(s);
  const tar = archive(
    entry({ path: "top/", type: "Directory", mode: 0o755 }),
    entry({ path: "top/tool", type: "File", mode: 0o4755 }, text("#!/bin/sh\n")),
    entry({ path: "top/shared", type: "Directory", mode: 0o3777 }),
    entry({ path: "top/out", type: "SymbolicLink", linkpath: outside }),
    entry({ path: "top/out/through-link", type: "File" }, text("through a link\n")),
    entry({ path: "top/up", type: "SymbolicLink", linkpath: "../.." }),
    entry({ path: "top/up/through-relative-link", type: "File" }, text("up\n")),
    entry({ path: "../dotdot", type: "File" }, text("dotdot\n")),
    entry({ path: "top/../../dotdot-inside", type: "File" }, text("dotdot\n")),
    entry({ path: "top/passwd", type: "Link", linkpath: "/etc/passwd" }),
    entry({ path: "top/null", type: "CharacterDevice", mode: 0o666, devmaj: 1, devmin: 3 }),
    entry({ path: "top/disk", type: "BlockDevice", mode: 0o666, devmaj: 8, devmin: 0 }),
    entry({ path: "top/fifo", type: "FIFO" }),
  );

  const { path, skipped } = await unpackTo(join(place, "copy"), chunked(tar, 700));

  expect(path).toBe(join(place, "copy"));
  // Nothing left the copy: not through a link, not by `..`, not as a hard link to a host file.
  expect(readdirSync(outside)).toEqual([]);
  expect(readdirSync(place)).toEqual(["copy"]);
  expect(existsSync(join(root, "dotdot"))).toBe(false);
  expect(existsSync(join(root, "dotdot-inside"))).toBe(false);
  expect(existsSync(join(path, "passwd"))).toBe(false);
  // No device, no FIFO; no setuid, setgid or sticky bit; the archive's owner not taken.
  expect(readdirSync(path).sort()).toEqual(["out", "shared", "tool", "up"]);
  expect(statSync(join(path, "tool")).mode & 0o7777).toBe(0o755 & ~process.umask());
  expect(statSync(join(path, "shared")).mode & 0o7000).toBe(0);
  expect(statSync(join(path, "tool")).uid).toBe(process.getuid!());
  // A link that would lead out is not made (an absolute one is made last, and not where entries
  // went): what went "through" it landed inside, in a directory.
  expect(readdirSync(join(path, "out"))).toEqual(["through-link"]);
  expect(lstatSync(join(path, "out")).isDirectory()).toBe(true);
  expect(readdirSync(join(path, "up"))).toEqual(["through-relative-link"]);
  expect(lstatSync(join(path, "up")).isDirectory()).toBe(true);
  // Every entry not written is counted, and the first few named with why.
  expect(skipped.count).toBe(8);
  expect(skipped.first).toEqual([
    "top/up: linkpath escapes extraction directory",
    "../dotdot: path contains '..'",
    "top/../../dotdot-inside: path contains '..'",
    "top/passwd: ENOENT: no such file or directory, link 'etc/passwd' -> 'top/passwd'",
    "top/null: unsupported entry type: CharacterDevice",
    "top/disk: unsupported entry type: BlockDevice",
    "top/fifo: unsupported entry type: FIFO",
    "top/out: the archive has another entry there",
  ]);
});

test("links are kept as links, an absolute one as it is, made after every file", async () => {
  const place = join(root, "links");
  mkdirSync(place);
  const tar = archive(
    entry({ path: "app/", type: "Directory", mode: 0o755 }),
    entry({ path: "app/python", type: "SymbolicLink", linkpath: "/usr/bin/python3" }),
    entry({ path: "app/current", type: "SymbolicLink", linkpath: "releases/1" }),
    entry({ path: "app/releases/1/run", type: "File", mode: 0o755 }, new TextEncoder().encode("ok\n")),
  );
  const { path, skipped } = await unpackTo(join(place, "app"), chunked(tar, 512));
  expect(readlinkSync(join(path, "python"))).toBe("/usr/bin/python3");
  expect(readlinkSync(join(path, "current"))).toBe("releases/1");
  expect(readFileSync(join(path, "current/run"), "utf8")).toBe("ok\n");
  expect(skipped.count).toBe(0);
});

test("an archive of 64 MiB passes in small chunks, byte for byte, and its sender is made to wait", async () => {
  const content = new Uint8Array(64 * 1024 * 1024).map((_, i) => (i * 2654435761) >>> 24);
  const tar = archive(entry({ path: "big.bin", type: "File", mode: 0o640 }, content));
  const waits = { count: 0 };
  const place = join(root, "big");
  mkdirSync(place);

  const { path, skipped } = await unpackTo(`${place}/`.slice(0, -1), chunked(tar, 64 * 1024, waits));

  expect(path).toBe(join(place, "big.bin"));
  expect(createHash("sha256").update(readFileSync(path)).digest("hex")).toBe(createHash("sha256").update(content).digest("hex"));
  expect(statSync(path).mode & 0o777).toBe(0o640 & ~process.umask());
  expect(skipped.count).toBe(0);
  // Backpressure: some writes asked the sender to wait for the disk rather than queue in memory.
  expect(waits.count).toBeGreaterThan(0);
});

test("bytes that are not a tar fail with one line, and nothing is left beside the target", async () => {
  const place = join(root, "garbage");
  mkdirSync(place);
  const noise = new Uint8Array(4096).fill(0x41);
  await expect(unpackTo(join(place, "x"), chunked(noise, 1000))).rejects.toThrow(/the archive from the sandbox cannot be read|expected one entry/);
  expect(readdirSync(place)).toEqual([]);
});

test("a copy that cannot fit is refused at its first file past the free space, before its bytes; a disk that fills meanwhile ends the copy with the path and the cause", async () => {
  // A file system of 256 KiB of its own, in a mount namespace of this test's own (as root, or as
  // an ordinary user through a user namespace).
  const place = join(root, "small-disk");
  mkdirSync(place);
  const script = join(root, "full.ts");
  await Bun.write(
    script,
    `import { writeFileSync, readdirSync } from "node:fs";
     import { unpackTo } from ${JSON.stringify(join(import.meta.dir, "../../src/core/archive"))};
     import { Header } from "tar";
     const entry = (path, size, type = "File") => { const header = Buffer.alloc(512); new Header({ path, type, mode: 0o755, size, mtime: new Date(0) }).encode(header); return header; };
     const padded = (size) => Buffer.alloc(Math.ceil(size / 512) * 512, 7);
     const report = (error) => console.log(error.code + ": " + error.message);
     // 1 MiB: refused as its header arrives, nothing written.
     try { await unpackTo(${JSON.stringify(join(place, "copy"))}, async (write) => { await write(Buffer.concat([entry("big.bin", 1024 * 1024), padded(1024 * 1024), Buffer.alloc(1024)])); }); console.log("no error"); }
     catch (error) { report(error); }
     console.log("left: " + readdirSync(${JSON.stringify(place)}).join(","));
     // Files that fit one by one but not together: the second is refused.
     try { await unpackTo(${JSON.stringify(join(place, "two"))}, async (write) => { await write(Buffer.concat([entry("two/", 0, "Directory"), entry("two/a", 160 * 1024), padded(160 * 1024), entry("two/b", 160 * 1024), padded(160 * 1024), Buffer.alloc(1024)])); }); console.log("no error"); }
     catch (error) { report(error); }
     // 16 MiB in chunks of 64 KiB: the sender stops at the first chunk after the header.
     let sent = 0;
     try {
       const body = Buffer.concat([entry("large.bin", 16 * 1024 * 1024), padded(16 * 1024 * 1024), Buffer.alloc(1024)]);
       await unpackTo(${JSON.stringify(join(place, "second"))}, async (write) => { for (let at = 0; at < body.length; at += 65536, sent++) await write(body.subarray(at, at + 65536)); });
       console.log("no error");
     } catch (error) { console.log(error.code + " (sent " + sent + ")"); }
     // 128 KiB that fit as the copy starts, then something else takes the space: the disk's refusal ends the copy.
     try {
       await unpackTo(${JSON.stringify(join(place, "copy"))}, async (write) => {
         await write(entry("fills.bin", 128 * 1024));
         writeFileSync(${JSON.stringify(join(place, "other"))}, Buffer.alloc(200 * 1024, 1));
         await write(Buffer.concat([padded(128 * 1024), Buffer.alloc(1024)]));
       });
       console.log("no error");
     } catch (error) { report(error); }`,
  );
  const result = Bun.spawnSync(["unshare", "--mount", "--map-root-user", "sh", "-c", 'mount -t tmpfs -o size=256k tmpfs "$1" && exec "$2" "$3"', "sh", place, process.execPath, script], { cwd: join(import.meta.dir, "../..") });
  expect(result.stderr.toString()).toBe("");
  expect(result.stdout.toString().split("\n")).toEqual([
    `no_space: cannot copy to ${join(place, "copy")}: its files need more than the 256.0 KiB free there (big.bin alone is 1.0 MiB)`,
    "left: ",
    `no_space: cannot copy to ${join(place, "two")}: its files need more than the 256.0 KiB free there (two/b alone is 160.0 KiB)`,
    "no_space (sent 1)",
    expect.stringMatching(new RegExp(`^file_system: cannot write (copy|fills.bin) into ${place}: .*(no space left on the device|bytes did not reach the disk)`)),
    "",
  ]);
});

test("an archive stream given up with a read pending (an attempt the API answered early) is no failure of the copy; a whole read and a tar that fails are as before", async () => {
  const place = join(root, "retried");
  mkdirSync(place);
  await Bun.write(join(place, "big.bin"), new Uint8Array(8 * 1024 * 1024).fill(1));
  // The first attempt's tar waits for its list of files (a FIFO nobody writes): the read is
  // pending when the reader gives up, as an upload's body is when the API answers early.
  const list = join(place, "list");
  Bun.spawnSync(["mkfifo", list]);
  const waiting = hostTar(["-C", place, "--files-from", list], place);
  const first = waiting.stream().getReader();
  const pending = first.read();
  await Bun.sleep(100);
  await first.cancel();
  await pending.catch(() => {});
  await Bun.sleep(100); // its tar is stopped, and ends meanwhile
  expect(waiting.failure).toBeUndefined();
  const archive = hostTar(["-C", place, "big.bin"], place);
  const whole = await new Response(archive.stream()).arrayBuffer();
  expect(whole.byteLength).toBeGreaterThan(8 * 1024 * 1024);
  expect(archive.failure).toBeUndefined();
  const missing = hostTar(["-C", place, "not-there"], join(place, "not-there"));
  await expect(new Response(missing.stream()).arrayBuffer()).rejects.toThrow(`cannot read ${join(place, "not-there")}`);
  expect(missing.failure?.message).toContain("cannot read");
});
