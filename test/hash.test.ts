import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { chmod, lstat, mkdir, mkdtemp, rename, rm, symlink, utimes, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { StoreIOError } from "../src/errors.js"
import {
  digestPath,
  dirDigestOf,
  type FileEntry,
  manifestBytes,
  sha256Bytes,
  sha256File,
} from "../src/hash.js"
import { StatCache } from "../src/stat-cache.js"

const HELLO = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256sum of "hello\n"
const EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" // sha256sum of ""

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pipeline-hash-"))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** Write files (path -> content) under `root`, creating parents. */
const tree = async (root: string, files: Record<string, string | Buffer>): Promise<void> => {
  await mkdir(root, { recursive: true })
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, ".."), { recursive: true })
    await writeFile(join(root, path), content)
  }
}

/** Move a file's mtime an hour back: past the racy window, so its digest may be cached. */
const age = async (path: string): Promise<void> => {
  const past = new Date(Date.now() - 3_600_000)
  await utimes(path, past, past)
}

const out = { followSymlinks: false }
const dep = { followSymlinks: true }

describe("sha256", () => {
  it("hashes bytes and strings like sha256sum", () => {
    expect(sha256Bytes("hello\n")).toBe(HELLO)
    expect(sha256Bytes(Buffer.from("hello\n"))).toBe(HELLO)
    expect(sha256Bytes("")).toBe(EMPTY)
  })

  it("streams files, across many chunks, to the digest sha256sum prints", async () => {
    const small = join(dir, "hello.txt")
    await writeFile(small, "hello\n")
    expect(await sha256File(small)).toBe(HELLO)

    const big = join(dir, "big.bin")
    const content = randomBytes(3 * 1024 * 1024 + 17)
    await writeFile(big, content)
    const expected = execFileSync("sha256sum", [big], { encoding: "utf8" }).split(" ")[0]
    expect(await sha256File(big)).toBe(expected)
    expect(sha256Bytes(content)).toBe(expected)
  })

  it("fails with StoreIOError for a missing file", async () => {
    await expect(sha256File(join(dir, "nope"))).rejects.toMatchObject({
      _tag: "StoreIOError",
      op: "read",
      message: `no such file or directory: ${join(dir, "nope")}`,
    })
  })
})

describe("digestPath of a file", () => {
  it("gives digest, size and executable bit", async () => {
    const p = join(dir, "f")
    await writeFile(p, "hello\n")
    expect(await digestPath(p, StatCache.memory(), out)).toEqual({
      kind: "file",
      digest: HELLO,
      size: 6,
      executable: false,
    })
    await chmod(p, 0o755)
    expect(await digestPath(p, StatCache.memory(), out)).toEqual({
      kind: "file",
      digest: HELLO,
      size: 6,
      executable: true,
    })
  })

  it("is undefined when nothing is there", async () => {
    expect(await digestPath(join(dir, "missing"), StatCache.memory(), out)).toBeUndefined()
    expect(await digestPath(join(dir, "missing", "below"), StatCache.memory(), dep)).toBeUndefined()
  })
})

describe("digestPath of a directory", () => {
  it("is the SHA-256 of the canonical manifest", async () => {
    await tree(join(dir, "d"), { "a/b.txt": "hello\n", c: "" })
    await chmod(join(dir, "d", "c"), 0o700)
    const manifest =
      '{"kind":"dir","files":[' +
      `{"path":"a/b.txt","digest":"${HELLO}","size":6,"executable":false},` +
      `{"path":"c","digest":"${EMPTY}","size":0,"executable":true}]}`
    const d = await digestPath(join(dir, "d"), StatCache.memory(), out)
    expect(d).toEqual({
      kind: "dir",
      digest: "3a6dcf07fe6d47481696127e08bded9bf240e7f335c775ef1bf2cede5e61a8c8", // printf ... | sha256sum
      size: 6,
      files: [
        { path: "a/b.txt", digest: HELLO, size: 6, executable: false },
        { path: "c", digest: EMPTY, size: 0, executable: true },
      ],
    })
    expect(d?.kind === "dir" && manifestBytes(d.files).toString()).toBe(manifest)
  })

  it("records no empty directories; an empty out has no files", async () => {
    await tree(join(dir, "empty"), {})
    expect(await digestPath(join(dir, "empty"), StatCache.memory(), out)).toEqual({
      kind: "dir",
      digest: "eab69403224fe757f152abefe8cbd23ebe9d8ccd4aee725d21808ae68dc210e6", // of {"kind":"dir","files":[]}
      size: 0,
      files: [],
    })
    await tree(join(dir, "x"), { f: "hello\n" })
    await tree(join(dir, "y"), { f: "hello\n" })
    await mkdir(join(dir, "y", "sub", "deeper"), { recursive: true })
    const x = await digestPath(join(dir, "x"), StatCache.memory(), out)
    const y = await digestPath(join(dir, "y"), StatCache.memory(), out)
    expect(y?.digest).toBe(x?.digest)
  })

  it("does not depend on creation order", async () => {
    const files = { "b/2": "two", a: "one", "b/1": "three", "c/d/e": "four" }
    await tree(join(dir, "one"), files)
    await tree(join(dir, "two"), Object.fromEntries(Object.entries(files).reverse()))
    const one = await digestPath(join(dir, "one"), StatCache.memory(), out)
    const two = await digestPath(join(dir, "two"), StatCache.memory(), out)
    expect(one?.digest).toBe(two?.digest)
    expect(one?.kind === "dir" && one.files.map((f) => f.path)).toEqual(["a", "b/1", "b/2", "c/d/e"])
  })

  it("sorts paths by UTF-8 byte order, not UTF-16", async () => {
    // U+FF61 is EF BD A1 in UTF-8 and U+1F600 is F0 9F 98 80, but in UTF-16 the emoji's surrogate sorts first.
    const names = ["\u{1F600}", "\uFF61", "a", "B", "Z/x"]
    await tree(join(dir, "d"), Object.fromEntries(names.map((n) => [n, n])))
    const d = await digestPath(join(dir, "d"), StatCache.memory(), out)
    expect(d?.kind === "dir" && d.files.map((f) => f.path)).toEqual(["B", "Z/x", "a", "\uFF61", "\u{1F600}"])
    const entry = (path: string): FileEntry => ({ path, digest: EMPTY, size: 0, executable: false })
    expect(dirDigestOf(["b", "a"].map(entry)).digest).toBe(dirDigestOf(["a", "b"].map(entry)).digest)
  })

  it("changes when a file is renamed, edited or made executable", async () => {
    const root = join(dir, "d")
    await tree(root, { "a/x": "hello\n", y: "data" })
    const digest = async () => (await digestPath(root, StatCache.memory(), out))?.digest
    const seen = new Set([await digest()])
    await rename(join(root, "a", "x"), join(root, "a", "z"))
    seen.add(await digest())
    await writeFile(join(root, "y"), "DATA")
    seen.add(await digest())
    await chmod(join(root, "y"), 0o755)
    seen.add(await digest())
    expect(seen.size).toBe(4)
  })

  it("hashes many files concurrently to the same result as one by one", async () => {
    const files = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}/data`, `content ${i}`]))
    await tree(join(dir, "d"), files)
    const d = await digestPath(join(dir, "d"), StatCache.memory(), out)
    const expected = dirDigestOf(
      Object.entries(files).map(([path, c]) => ({
        path,
        digest: sha256Bytes(c),
        size: c.length,
        executable: false,
      })),
    )
    expect(d).toEqual(expected)
  })
})

describe("symbolic links and special files", () => {
  it("rejects a symlink inside an out, naming it", async () => {
    await tree(join(dir, "d"), { "real.txt": "hello\n" })
    await mkdir(join(dir, "d", "sub"))
    await symlink("../real.txt", join(dir, "d", "sub", "link"))
    const err = await digestPath(join(dir, "d"), StatCache.memory(), out).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreIOError)
    expect((err as StoreIOError).path).toBe(join(dir, "d", "sub", "link"))
    expect((err as StoreIOError).message).toBe(
      `outs may not contain symbolic links, but ${join(dir, "d", "sub", "link")} is one; write a copy of the file it points to instead`,
    )
  })

  it("rejects an out that is itself a symlink", async () => {
    await writeFile(join(dir, "real"), "hello\n")
    await symlink("real", join(dir, "link"))
    await expect(digestPath(join(dir, "link"), StatCache.memory(), out)).rejects.toBeInstanceOf(StoreIOError)
  })

  it("follows symlinks for deps", async () => {
    await tree(join(dir, "real"), { "a/b": "hello\n" })
    await mkdir(join(dir, "viaLink"))
    await symlink(join(dir, "real", "a"), join(dir, "viaLink", "a"))
    await symlink(join(dir, "real"), join(dir, "whole"))
    const real = await digestPath(join(dir, "real"), StatCache.memory(), dep)
    expect((await digestPath(join(dir, "viaLink"), StatCache.memory(), dep))?.digest).toBe(real?.digest)
    expect((await digestPath(join(dir, "whole"), StatCache.memory(), dep))?.digest).toBe(real?.digest)
    expect(await digestPath(join(dir, "real", "a", "b"), StatCache.memory(), dep)).toEqual({
      kind: "file",
      digest: HELLO,
      size: 6,
      executable: false,
    })
  })

  it("reports a symlink loop in a dep instead of recursing forever", async () => {
    await tree(join(dir, "d"), { f: "x" })
    await symlink(".", join(dir, "d", "up"))
    await expect(digestPath(join(dir, "d"), StatCache.memory(), dep)).rejects.toMatchObject({
      _tag: "StoreIOError",
      path: join(dir, "d", "up"),
    })
  })

  it("rejects a named pipe", async () => {
    await mkdir(join(dir, "d"))
    execFileSync("mkfifo", [join(dir, "d", "pipe")])
    await expect(digestPath(join(dir, "d"), StatCache.memory(), dep)).rejects.toMatchObject({
      _tag: "StoreIOError",
      message: `cannot hash ${join(dir, "d", "pipe")}: it is a named pipe; only regular files and directories can be deps and outs`,
    })
  })
})

describe("digestPath and the stat cache", () => {
  const FAKE = "f".repeat(64)

  it("takes a digest from the cache while the stat matches, without reading the file", async () => {
    const p = join(dir, "f")
    await writeFile(p, "hello\n")
    const cache = StatCache.memory()
    // A digest the file cannot have: getting it back proves the file was not read.
    cache.set(p, await lstat(p, { bigint: true }), FAKE)
    expect((await digestPath(p, cache, out))?.digest).toBe(FAKE)
    await tree(dir, { "d/f": "x" })
    cache.set(join(dir, "d", "f"), await lstat(join(dir, "d", "f"), { bigint: true }), FAKE)
    const d = await digestPath(join(dir, "d"), cache, out)
    expect(d?.kind === "dir" && d.files[0]?.digest).toBe(FAKE)
  })

  it("re-reads a file once its stat changes (touch)", async () => {
    const p = join(dir, "f")
    await writeFile(p, "hello\n")
    const cache = StatCache.memory()
    cache.set(p, await lstat(p, { bigint: true }), FAKE)
    await age(p)
    expect((await digestPath(p, cache, out))?.digest).toBe(HELLO)
  })

  it("caches what it hashed when the file is old enough", async () => {
    const p = join(dir, "f")
    await writeFile(p, "hello\n")
    await age(p)
    const cache = StatCache.memory()
    await digestPath(p, cache, out)
    expect(cache.get(p, await lstat(p, { bigint: true }))).toBe(HELLO)
  })

  it("does not cache a file modified within the racy window", async () => {
    const p = join(dir, "f")
    await writeFile(p, "hello\n")
    const cache = StatCache.memory()
    expect((await digestPath(p, cache, out))?.digest).toBe(HELLO)
    expect(cache.size).toBe(0)
  })
})
