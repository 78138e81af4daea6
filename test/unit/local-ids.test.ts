import { describe, expect, test } from "bun:test";
import { newSandboxId, uidOfId } from "../../src/providers/local/provider";

describe("local sandbox ids and their uids (as root)", () => {
  test("an id's uid is 200000 plus its last six hex digits modulo 100000", () => {
    expect(uidOfId("local-000000000000")).toBe(200000);
    expect(uidOfId("local-aaaaaa0186a1")).toBe(200001); // 0x0186a1 = 100001
    expect(uidOfId("local-ffffffffffff")).toBe(200000 + (0xffffff % 100000));
  });

  test("a new id never takes the uid of a sandbox that exists", () => {
    // Taken: 200000 and 200001. 0x0186a0 = 100000 gives 200000 again, 0x0186a1 200001.
    const draws = ["1111110186a0", "2222220186a1", "333333000002"];
    const id = newSandboxId(["local-abcdef000000", "local-abcdef000001"], () => draws.shift()!);
    expect(id).toBe("local-333333000002");
    expect(uidOfId(id)).toBe(200002);
    expect(draws).toEqual([]);
  });

  test("what is not a sandbox's directory takes no uid", () => {
    const id = newSandboxId(["local-00000000000", "notes", "local-000000000000.tmp"], () => "000000000000");
    expect(id).toBe("local-000000000000");
  });

  test("with nothing there, the first draw is the id", () => {
    const id = newSandboxId([]);
    expect(id).toMatch(/^local-[0-9a-f]{12}$/);
  });
});
