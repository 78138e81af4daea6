/**
 * anonymousFile (src/providers/local/provider.ts): bwrap's --info-fd, a file with no name that
 * bwrap can write to even once the CLI is gone. O_TMPFILE, or on a file system without it, a
 * file removed as soon as it is open; either way nothing is left in the directory.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, readdirSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { anonymousFile } from "../../src/providers/local/provider";

const dir = mkdtempSync(join(tmpdir(), "sandboxes-anonymous-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("anonymousFile", () => {
  for (const tmpfile of [true, false]) {
    test(`${tmpfile ? "O_TMPFILE" : "a file removed once open"}: a child writes through it, we read it back by position, and the directory stays empty`, async () => {
      const fd = anonymousFile(dir, tmpfile);
      try {
        expect(readdirSync(dir)).toEqual([]);
        const child = Bun.spawn(["sh", "-c", 'printf \'{"child-pid": 42}\' >&3'], { stdio: ["ignore", "ignore", "inherit", fd] });
        expect(await child.exited).toBe(0);
        const buffer = Buffer.alloc(64);
        const count = readSync(fd, buffer, 0, buffer.length, 0);
        expect(buffer.toString("utf8", 0, count)).toBe('{"child-pid": 42}');
        expect(readdirSync(dir)).toEqual([]);
      } finally {
        closeSync(fd);
      }
    });
  }
});
