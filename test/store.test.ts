import { randomBytes } from "node:crypto"
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { StoreCorrupt, StoreIOError } from "../src/errors.js"
import { ioError } from "../src/fs-util.js"
import { type DirDigest, digestPath, type PathDigest, sha256Bytes } from "../src/hash.js"
import { outRecord, type RunCacheEntry } from "../src/run-cache.js"
import { StatCache } from "../src/stat-cache.js"
import { Store } from "../src/store.js"

const HELLO = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256sum of "hello\n"

let dir: string
let ws: string
let store: Store
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pipeline-store-"))
  ws = join(dir, "ws")
  await mkdir(ws)
  store = await Store.open(join(dir, "store"))
})
afterEach(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

const tree = async (root: string, files: Record<string, string | Buffer>): Promise<void> => {
  await mkdir(root, { recursive: true })
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, ".."), { recursive: true })
    await writeFile(join(root, path), content)
  }
}

/** Every file under `root` (relative path -> content and mode), and its empty directories. */
const snapshot = async (root: string): Promise<Record<string, string>> => {
  const result: Record<string, string> = {}
  const walk = async (d: string, rel: string): Promise<void> => {
    const names = (await readdir(d)).sort()
    if (names.length === 0 && rel !== "") result[`${rel}/`] = "(empty dir)"
    for (const name of names) {
      const p = join(d, name)
      const r = rel === "" ? name : `${rel}/${name}`
      const st = await lstat(p)
      if (st.isDirectory()) await walk(p, r)
      else result[r] = `${(st.mode & 0o777).toString(8)} ${sha256Bytes(await readFile(p))}`
    }
  }
  await walk(root, "")
  return result
}

const hashOut = async (p: string): Promise<PathDigest> => {
  const d = await digestPath(p, StatCache.memory(), { followSymlinks: false })
  if (d === undefined) throw new Error(`nothing at ${p}`)
  return d
}

const dirOf = (d: PathDigest): DirDigest => {
  if (d.kind !== "dir") throw new Error("not a dir")
  return d
}

const mode = async (p: string) => (await stat(p)).mode & 0o777

/** Overwrite an object with other bytes of the same size, as bit rot or a stray write would. */
const corrupt = async (digest: string): Promise<void> => {
  const p = store.objectPath(digest)
  const size = (await stat(p)).size
  await chmod(p, 0o644)
  await writeFile(p, Buffer.alloc(size, 0x78))
}

describe("Store.open", () => {
  it("lays out objects/, runcache/ and tmp/", async () => {
    expect((await readdir(join(dir, "store"))).sort()).toEqual(["objects", "runcache", "tmp"])
    expect(store.objectPath(HELLO)).toBe(join(dir, "store", "objects", "58", HELLO.slice(2)))
    expect(() => store.objectPath("../../etc/passwd")).toThrow(TypeError)
  })

  it("removes temp folders of dead processes and old stray files, keeps live ones", async () => {
    const tmp = join(dir, "store", "tmp")
    // pid_max is at most 2^22, so this pid cannot be alive.
    await tree(join(tmp, "99999999-0a1b2c"), { "half-written": "x" })
    await tree(join(tmp, `${process.pid}-0a1b2c`), { "being-written": "x" })
    await tree(tmp, { "stray-new": "x", "stray-old": "x" })
    const old = new Date(Date.now() - 2 * 3_600_000)
    await utimes(join(tmp, "stray-old"), old, old)
    const reopened = await Store.open(join(dir, "store"))
    expect((await readdir(tmp)).sort()).toEqual([`${process.pid}-0a1b2c`, "stray-new"])
    await reopened.close()
  })
})

describe("putOut", () => {
  it("saves a file as a read-only object named by its digest", async () => {
    const p = join(ws, "hello.txt")
    await writeFile(p, "hello\n")
    expect(await store.has(HELLO)).toBe(false)
    await store.putOut(p, await hashOut(p))
    expect(await store.has(HELLO)).toBe(true)
    expect(await readFile(store.objectPath(HELLO), "utf8")).toBe("hello\n")
    expect(await mode(store.objectPath(HELLO))).toBe(0o444)
    // Again: the existing object is kept as it is.
    const ino = (await stat(store.objectPath(HELLO))).ino
    await store.putOut(p, await hashOut(p))
    expect((await stat(store.objectPath(HELLO))).ino).toBe(ino)
    expect(await readdir(join(dir, "store", "tmp"))).toEqual([expect.stringMatching(/^\d+-[0-9a-f]{12}$/)])
    expect(
      await readdir(join(dir, "store", "tmp", (await readdir(join(dir, "store", "tmp")))[0] ?? "")),
    ).toEqual([])
  })

  it("saves a directory as its files plus its manifest", async () => {
    await tree(join(ws, "d"), { "a/hello": "hello\n", "a/copy": "hello\n", b: "other" })
    const d = dirOf(await hashOut(join(ws, "d")))
    await store.putOut(join(ws, "d"), d)
    const objects: Array<string> = []
    for await (const o of store.listObjects()) objects.push(o)
    expect(objects.sort()).toEqual([HELLO, sha256Bytes("other"), d.digest].sort())
    expect(await store.readManifest(d.digest)).toEqual(d)
    expect(await store.objectsOf(d)).toEqual(new Set([d.digest, HELLO, sha256Bytes("other")]))
    expect(await store.objectsOf({ kind: "file", digest: HELLO, size: 6, executable: false })).toEqual(
      new Set([HELLO]),
    )
    expect(await store.stats()).toEqual({
      objects: 3,
      bytes: 6 + 5 + (await stat(store.objectPath(d.digest))).size,
    })
  })

  it("refuses a file that changed since it was hashed, leaving no object", async () => {
    const p = join(ws, "f")
    await writeFile(p, "hello\n")
    const d = await hashOut(p)
    await writeFile(p, "HELLO\n")
    // A small file is saved synchronously: the failure is thrown, not a rejected promise.
    const err = await Promise.resolve()
      .then(() => store.putOut(p, d))
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreIOError)
    expect((err as StoreIOError).message).toBe(
      `${p} changed while it was being saved to the store; is something still writing it?`,
    )
    expect(await store.has(HELLO)).toBe(false)
    expect(await store.has(sha256Bytes("HELLO\n"))).toBe(false)
  })

  it("lets concurrent writers of the same objects both succeed", async () => {
    await tree(join(ws, "a"), { "x/1": "same", "x/2": "hello\n" })
    await tree(join(ws, "b"), { "x/1": "same", "x/2": "hello\n" })
    const a = await hashOut(join(ws, "a"))
    const b = await hashOut(join(ws, "b"))
    expect(b.digest).toBe(a.digest)
    const other = await Store.open(join(dir, "store"))
    await Promise.all([
      store.putOut(join(ws, "a"), a),
      other.putOut(join(ws, "b"), b),
      store.putOut(join(ws, "a"), a),
    ])
    await other.close()
    for (const digest of [a.digest, HELLO, sha256Bytes("same")])
      expect(await store.verifyObject(digest)).toBe(true)
  })

  it("replaces a truncated object", async () => {
    const p = join(ws, "f")
    await writeFile(p, "hello\n")
    await mkdir(join(store.objectPath(HELLO), ".."), { recursive: true })
    await writeFile(store.objectPath(HELLO), "hel")
    await store.putOut(p, await hashOut(p))
    expect(await store.verifyObject(HELLO)).toBe(true)
  })
})

describe("restoreOut", () => {
  it("round-trips a file bit for bit, creating parent directories", async () => {
    const content = randomBytes(2 * 1024 * 1024 + 3)
    await writeFile(join(ws, "model.bin"), content)
    const d = await hashOut(join(ws, "model.bin"))
    await store.putOut(join(ws, "model.bin"), d)
    const dest = join(ws, "elsewhere", "deep", "model.bin")
    await store.restoreOut(d, dest, StatCache.memory())
    expect((await readFile(dest)).equals(content)).toBe(true)
    expect(await mode(dest)).toBe(0o644)
  })

  it("round-trips a nested directory with an executable file and an empty file", async () => {
    const src = join(ws, "src")
    await tree(src, {
      "bin/run.sh": "#!/bin/sh\necho hi\n",
      "data/a/b/c.txt": "deep",
      "data/empty": "",
      top: "t",
    })
    await chmod(join(src, "bin", "run.sh"), 0o755)
    const d = await hashOut(src)
    await store.putOut(src, d)
    const dest = join(ws, "restored")
    await store.restoreOut(d, dest, StatCache.memory())
    expect(await snapshot(dest)).toEqual(await snapshot(src))
    expect(await mode(join(dest, "bin", "run.sh"))).toBe(0o755)
    expect(await mode(join(dest, "top"))).toBe(0o644)
    expect((await hashOut(dest)).digest).toBe(d.digest)
  })

  it("restores an empty directory out, and an executable file out", async () => {
    await mkdir(join(ws, "empty"))
    const e = await hashOut(join(ws, "empty"))
    await store.putOut(join(ws, "empty"), e)
    await store.restoreOut(e, join(ws, "again"), StatCache.memory())
    expect(await readdir(join(ws, "again"))).toEqual([])

    await writeFile(join(ws, "tool"), "#!/bin/sh\n")
    await chmod(join(ws, "tool"), 0o700)
    const t = await hashOut(join(ws, "tool"))
    await store.putOut(join(ws, "tool"), t)
    await rm(join(ws, "tool"))
    await store.restoreOut(t, join(ws, "tool"), StatCache.memory())
    expect(await mode(join(ws, "tool"))).toBe(0o755)
  })

  it("restores from a run-cache record (no file list), reading the manifest", async () => {
    await tree(join(ws, "d"), { x: "1", "y/z": "2" })
    const d = await hashOut(join(ws, "d"))
    await store.putOut(join(ws, "d"), d)
    const record = outRecord("d", d)
    expect(record).toEqual({ path: "d", kind: "dir", digest: d.digest, size: 2 })
    await store.restoreOut(record, join(ws, "r"), StatCache.memory())
    expect(await snapshot(join(ws, "r"))).toEqual(await snapshot(join(ws, "d")))
  })

  it("replaces an existing directory, leaving nothing of it and no temp names behind", async () => {
    await tree(join(ws, "v1"), { keep: "new content" })
    const d = await hashOut(join(ws, "v1"))
    await store.putOut(join(ws, "v1"), d)
    const dest = join(ws, "out")
    await tree(dest, { keep: "old", "stale/file": "stale" })
    await store.restoreOut(d, dest, StatCache.memory())
    expect(await snapshot(dest)).toEqual(await snapshot(join(ws, "v1")))
    expect((await readdir(ws)).sort()).toEqual(["out", "v1"])
  })

  it("replaces a symlink at the destination instead of writing through it", async () => {
    const outside = join(dir, "outside")
    await tree(outside, { "precious.txt": "do not touch" })
    await writeFile(join(ws, "f"), "hello\n")
    await tree(join(ws, "d"), { "precious.txt": "replacement" })
    const f = await hashOut(join(ws, "f"))
    const d = await hashOut(join(ws, "d"))
    await store.putOut(join(ws, "f"), f)
    await store.putOut(join(ws, "d"), d)

    await symlink(join(outside, "precious.txt"), join(ws, "file-link"))
    await store.restoreOut(f, join(ws, "file-link"), StatCache.memory())
    expect((await lstat(join(ws, "file-link"))).isFile()).toBe(true)

    await symlink(outside, join(ws, "dir-link"))
    await store.restoreOut(d, join(ws, "dir-link"), StatCache.memory())
    expect((await lstat(join(ws, "dir-link"))).isDirectory()).toBe(true)
    expect(await readFile(join(ws, "dir-link", "precious.txt"), "utf8")).toBe("replacement")

    await symlink(outside, join(ws, "file-over-dir-link"))
    await store.restoreOut(f, join(ws, "file-over-dir-link"), StatCache.memory())
    expect(await readFile(join(ws, "file-over-dir-link"), "utf8")).toBe("hello\n")

    expect(await snapshot(outside)).toEqual({ "precious.txt": `644 ${sha256Bytes("do not touch")}` })
  })

  it("records restored files in the stat cache", async () => {
    await tree(join(ws, "d"), { "a/b": "hello\n" })
    const d = await hashOut(join(ws, "d"))
    await store.putOut(join(ws, "d"), d)
    const cache = StatCache.memory()
    await store.restoreOut(d, join(ws, "r"), cache)
    const p = join(ws, "r", "a", "b")
    expect(cache.get(p, await lstat(p, { bigint: true }))).toBe(HELLO)
    expect(cache.size).toBe(1)
  })

  it("detects a corrupt object, removes it and leaves the destination as it was", async () => {
    await tree(join(ws, "d"), { good: "fine", bad: "hello\n" })
    const d = await hashOut(join(ws, "d"))
    await store.putOut(join(ws, "d"), d)
    await corrupt(HELLO)
    const dest = join(ws, "out")
    await tree(dest, { previous: "x" })
    const err = await store.restoreOut(d, dest, StatCache.memory()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(StoreCorrupt)
    expect(err).toMatchObject({ digest: HELLO, path: store.objectPath(HELLO) })
    expect(await store.has(HELLO)).toBe(false)
    expect(await store.has(sha256Bytes("fine"))).toBe(true)
    expect(await readdir(dest)).toEqual(["previous"])
    expect((await readdir(ws)).sort()).toEqual(["d", "out"])
  })

  it("detects a corrupt file object and a corrupt manifest", async () => {
    await writeFile(join(ws, "f"), "hello\n")
    const f = await hashOut(join(ws, "f"))
    await store.putOut(join(ws, "f"), f)
    await corrupt(HELLO)
    expect(await store.verifyObject(HELLO)).toBe(false)
    await expect(store.restoreOut(f, join(ws, "r"), StatCache.memory())).rejects.toMatchObject({
      _tag: "StoreCorrupt",
      digest: HELLO,
    })
    expect(await store.verifyObject(HELLO)).toBe(false) // removed

    await tree(join(ws, "d"), { x: "1" })
    const d = await hashOut(join(ws, "d"))
    await store.putOut(join(ws, "d"), d)
    await corrupt(d.digest)
    await expect(store.readManifest(d.digest)).rejects.toBeInstanceOf(StoreCorrupt)
    expect(await store.has(d.digest)).toBe(false)
  })

  it("fails with StoreCorrupt when an object is missing", async () => {
    const missing = { kind: "file", digest: HELLO, size: 6, executable: false } as const
    await expect(store.restoreOut(missing, join(ws, "r"), StatCache.memory())).rejects.toMatchObject({
      _tag: "StoreCorrupt",
      digest: HELLO,
      path: store.objectPath(HELLO),
    })
    await expect(
      store.restoreOut({ kind: "dir", digest: HELLO, size: 6 }, join(ws, "r"), StatCache.memory()),
    ).rejects.toBeInstanceOf(StoreCorrupt)
    expect(await readdir(ws)).toEqual([])
  })

  it("rejects a manifest that escapes the directory", async () => {
    const evil = Buffer.from(
      JSON.stringify({
        kind: "dir",
        files: [{ path: "../escape", digest: HELLO, size: 6, executable: false }],
      }),
    )
    const digest = sha256Bytes(evil)
    await mkdir(join(store.objectPath(digest), ".."), { recursive: true })
    await writeFile(store.objectPath(digest), evil)
    await expect(store.readManifest(digest)).rejects.toBeInstanceOf(StoreCorrupt)
  })
})

describe("run cache", () => {
  const FP = "0123456789abcdef".repeat(4)

  it("round-trips an entry, storing a directory without its file list", async () => {
    await tree(join(ws, "d"), { x: "1" })
    await writeFile(join(ws, "f"), "hello\n")
    const d = await hashOut(join(ws, "d"))
    const f = await hashOut(join(ws, "f"))
    const entry: RunCacheEntry = {
      fingerprint: FP,
      stage: "train",
      createdAt: "2025-01-02T03:04:05.000Z",
      outs: [outRecord("out/d", d), outRecord("out/f", f)],
    }
    expect(await store.getRunCache(FP)).toBeUndefined()
    await store.putRunCache(entry)
    expect(await store.getRunCache(FP)).toEqual(entry)
    const text = await readFile(join(dir, "store", "runcache", "journal.jsonl"), "utf8")
    expect(text.split("\n").filter((l) => l !== "")).toHaveLength(1)
    expect(text).not.toContain('"files"')

    const listed = []
    for await (const e of store.listRunCache()) listed.push(e)
    expect(listed).toEqual([{ ...entry, mtimeMs: expect.any(Number) }])

    await store.deleteRunCache(FP)
    expect(await store.getRunCache(FP)).toBeUndefined()
    await store.deleteRunCache(FP) // deleting what is not there is fine
  })

  it("skips journal lines that are cut short or malformed, and appends after a cut on a line of its own", async () => {
    const journal = join(dir, "store", "runcache", "journal.jsonl")
    const entry = (fingerprint: string): RunCacheEntry => ({
      fingerprint,
      stage: "s",
      createdAt: "2025-01-02T03:04:05.000Z",
      outs: [],
    })
    const other = "ab".repeat(32)
    await writeFile(
      journal,
      [
        JSON.stringify(entry(other)),
        "garbage",
        JSON.stringify({ ...entry(FP), outs: [{ path: "x", kind: "dir" }] }), // no digest: not an entry
        '{"fingerprint": "01', // cut short by a crash, no line break
      ].join("\n"),
    )
    const reopened = await Store.open(join(dir, "store"))
    expect(reopened.getRunCache(FP)).toBeUndefined()
    expect(reopened.getRunCache(other)).toEqual(entry(other))
    reopened.putRunCache(entry(FP))
    const again = await Store.open(join(dir, "store"))
    expect(again.getRunCache(FP)).toEqual(entry(FP))
    // deleted by a tombstone line; compacting leaves one line per live entry
    await again.deleteRunCache(other)
    expect(again.getRunCache(other)).toBeUndefined()
    expect((await Store.open(join(dir, "store"))).getRunCache(other)).toBeUndefined()
    await again.compactRunCache()
    expect(await readFile(journal, "utf8")).toBe(`${JSON.stringify(entry(FP))}\n`)
    for (const s of [reopened, again]) await s.close()
  })

  it("reads an entry file as older versions wrote, beside the journal", async () => {
    const old: RunCacheEntry = {
      fingerprint: FP,
      stage: "s",
      createdAt: "2025-01-02T03:04:05.000Z",
      outs: [outRecord("f", { kind: "file", digest: HELLO, size: 6, executable: false } as PathDigest)],
    }
    await mkdir(join(dir, "store", "runcache", FP.slice(0, 2)), { recursive: true })
    await writeFile(join(dir, "store", "runcache", FP.slice(0, 2), `${FP}.json`), JSON.stringify(old))
    const reopened = await Store.open(join(dir, "store"))
    expect(reopened.getRunCache(FP)).toEqual(old)
    expect(reopened.getRunCache("02".repeat(32))).toBeUndefined()
    await reopened.close()
  })

  it("treats a corrupt entry file (as older versions wrote) as missing and deletes it", async () => {
    const path = join(dir, "store", "runcache", "01", `${FP}.json`)
    await mkdir(join(path, ".."), { recursive: true })
    for (const text of [
      '{"fingerprint": "01',
      JSON.stringify({ fingerprint: "f".repeat(64), stage: "s", createdAt: "t", outs: [] }),
      JSON.stringify({ fingerprint: FP, stage: "s", createdAt: "t", outs: [{ path: "x", kind: "dir" }] }),
    ]) {
      await writeFile(path, text)
      expect(await store.getRunCache(FP)).toBeUndefined()
      await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" })
    }
    await writeFile(path, "garbage")
    const listed = []
    for await (const e of store.listRunCache()) listed.push(e)
    expect(listed).toEqual([])
    await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" })
  })
})

describe("folders removed while the store is open", () => {
  it("are made again: the temp folder, an object's folder and the run-cache folder", async () => {
    await writeFile(join(ws, "f"), "hello\n")
    await writeFile(join(ws, "g"), "other\n")
    await store.putOut(join(ws, "f"), await hashOut(join(ws, "f")))
    const entry: RunCacheEntry = {
      fingerprint: "01".repeat(32),
      stage: "s",
      createdAt: "2025-01-02T03:04:05.000Z",
      outs: [outRecord("f", await hashOut(join(ws, "f")))],
    }
    store.putRunCache(entry)
    // Each folder was made once and is remembered: remove them all behind the store's back.
    await rm(join(dir, "store", "tmp"), { recursive: true })
    await rm(join(dir, "store", "objects", HELLO.slice(0, 2)), { recursive: true })
    await rm(join(dir, "store", "runcache"), { recursive: true })
    await store.putOut(join(ws, "f"), await hashOut(join(ws, "f")))
    await store.putOut(join(ws, "g"), await hashOut(join(ws, "g")))
    store.putRunCache(entry)
    expect(await store.verifyObject(HELLO)).toBe(true)
    expect(await store.verifyObject(sha256Bytes("other\n"))).toBe(true)
    expect(store.getRunCache(entry.fingerprint)).toEqual(entry)
  })
})

describe("objects", () => {
  it("lists, verifies and removes objects", async () => {
    await writeFile(join(ws, "f"), "hello\n")
    await store.putOut(join(ws, "f"), await hashOut(join(ws, "f")))
    expect(await store.verifyObject(HELLO)).toBe(true)
    await store.removeObject(HELLO)
    expect(await store.has(HELLO)).toBe(false)
    expect(await store.verifyObject(HELLO)).toBe(false)
    await store.removeObject(HELLO)
    expect(await store.stats()).toEqual({ objects: 0, bytes: 0 })
  })

  it("says a directory with a missing or corrupt manifest references only the manifest", async () => {
    await tree(join(ws, "d"), { f: "hello\n" })
    const d = await hashOut(join(ws, "d"))
    expect(await store.objectsOf(d)).toEqual(new Set([d.digest]))
    await store.putOut(join(ws, "d"), d)
    expect(await store.objectsOf(d)).toEqual(new Set([d.digest, HELLO]))
    await corrupt(d.digest)
    expect(await store.objectsOf(d)).toEqual(new Set([d.digest]))
  })
})

describe("errors", () => {
  it("reads well for a full disk and other errno errors", () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" })
    expect(ioError("write", "/store/objects/ab/cd", enospc)).toEqual(
      new StoreIOError({
        op: "write",
        path: "/store/objects/ab/cd",
        message: "no space left on device while writing /store/objects/ab/cd",
      }),
    )
    const eacces = Object.assign(new Error("EACCES"), { code: "EACCES" })
    expect(ioError("read", "/x", eacces)).toMatchObject({ message: "permission denied: cannot read /x" })
    const passThrough = new StoreCorrupt({ digest: HELLO, path: "/p" })
    expect(ioError("read", "/x", passThrough)).toBe(passThrough)
  })
})
