import { lstat, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { StatCache, statKey } from "../src/stat-cache.js"

const A = "a".repeat(64)
const B = "b".repeat(64)

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "pipeline-statcache-"))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const bigStat = (p: string) => lstat(p, { bigint: true })
const today = () => Math.floor(Date.now() / 86_400_000)

describe("StatCache", () => {
  it("remembers what this process saw of each file: digests set, looked up, or seen without caching", async () => {
    const p = join(dir, "f")
    const q = join(dir, "g")
    await writeFile(p, "hello\n")
    await writeFile(q, "racy\n")
    const file = join(dir, "stat-cache.json")
    const saved = await StatCache.load(file)
    saved.set(p, await bigStat(p), A)
    await saved.save()
    const loaded = await StatCache.load(file)
    const cache = StatCache.memory()
    expect(cache.observed(p)).toBeUndefined()
    cache.saw(q, await bigStat(q), B)
    expect(cache.observed(q)).toEqual({ key: statKey(await bigStat(q)), digest: B })
    expect(cache.get(q, await bigStat(q))).toBeUndefined() // seen, not cached
    cache.set(p, await bigStat(p), A)
    expect(cache.observed(p)).toEqual({ key: statKey(await bigStat(p)), digest: A })
    // a lookup that hits counts too: the entry a later run loads
    expect(loaded.observed(p)).toBeUndefined()
    expect(loaded.get(p, await bigStat(p))).toBe(A)
    expect(loaded.observed(p)?.digest).toBe(A)
  })

  it("hits while size, mtime, ctime and inode match", async () => {
    const p = join(dir, "f")
    await writeFile(p, "hello\n")
    const cache = StatCache.memory()
    expect(cache.get(p, await bigStat(p))).toBeUndefined()
    cache.set(p, await bigStat(p), A)
    expect(cache.get(p, await bigStat(p))).toBe(A)
    expect(cache.get(join(dir, "other"), await bigStat(p))).toBeUndefined()
  })

  it("misses after a touch, an edit of the same size, or a replacement", async () => {
    const p = join(dir, "f")
    await writeFile(p, "hello\n")
    const cache = StatCache.memory()
    cache.set(p, await bigStat(p), A)

    const old = new Date(Date.now() - 60_000)
    await utimes(p, old, old)
    expect(cache.get(p, await bigStat(p))).toBeUndefined()

    cache.set(p, await bigStat(p), A)
    const before = await bigStat(p)
    await writeFile(p, "HELLO\n")
    await utimes(p, old, old) // same size and mtime: the ctime still tells
    const after = await bigStat(p)
    expect(after.mtimeNs).toBe(before.mtimeNs)
    expect(cache.get(p, after)).toBeUndefined()

    cache.set(p, after, B)
    await rm(p)
    await writeFile(p, "HELLO\n")
    const replaced = await bigStat(p)
    expect(statKey(replaced)).not.toBe(statKey(after))
    expect(cache.get(p, replaced)).toBeUndefined()
  })

  it("round-trips through its file", async () => {
    const file = join(dir, "cache", "stat.json")
    const p = join(dir, "f")
    await writeFile(p, "x")
    const cache = await StatCache.load(file)
    expect(cache.size).toBe(0)
    cache.set(p, await bigStat(p), A)
    await cache.save()
    const again = await StatCache.load(file)
    expect(again.size).toBe(1)
    expect(again.get(p, await bigStat(p))).toBe(A)
    expect(await readdir(join(dir, "cache"))).toEqual(["stat.json"]) // no temp file left
  })

  it("writes only when something changed", async () => {
    const file = join(dir, "stat.json")
    const p = join(dir, "f")
    await writeFile(p, "x")
    const cache = await StatCache.load(file)
    await cache.save()
    await expect(stat(file)).rejects.toMatchObject({ code: "ENOENT" })
    cache.set(p, await bigStat(p), A)
    await cache.save()
    await rm(file)
    cache.set(p, await bigStat(p), A) // same as before: not a change
    expect(cache.get(p, await bigStat(p))).toBe(A)
    await cache.save()
    await expect(stat(file)).rejects.toMatchObject({ code: "ENOENT" })
    cache.delete(p)
    await cache.save()
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ version: 1, entries: [] })
  })

  it("treats a missing, corrupt or foreign file as empty", async () => {
    expect((await StatCache.load(join(dir, "missing.json"))).size).toBe(0)
    for (const text of [
      "{not json",
      "null",
      "[]",
      '{"version":2,"entries":[["/x","1:2:3:4","' + A + '",1]]}',
    ]) {
      await writeFile(join(dir, "bad.json"), text)
      expect((await StatCache.load(join(dir, "bad.json"))).size).toBe(0)
    }
  })

  it("skips malformed rows and drops entries idle for more than 30 days", async () => {
    const file = join(dir, "stat.json")
    const entries = [
      ["/kept", "6:1:2:3", A, today()],
      ["/idle", "6:1:2:3", A, today() - 31],
      ["/bad-digest", "6:1:2:3", "xyz", today()],
      ["/bad-key", "six", A, today()],
      ["/short"],
    ]
    await writeFile(file, JSON.stringify({ version: 1, entries }))
    const cache = await StatCache.load(file)
    expect(cache.size).toBe(1)
    await cache.save() // dropping counts as a change
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual({ version: 1, entries: [entries[0]] })
  })

  it("loads and saves 1,000 entries in a few milliseconds", async () => {
    const file = join(dir, "stat.json")
    const entries = Array.from({ length: 1000 }, (_, i) => [
      `/project/data/part-${i}.bin`,
      `${i}:1700000000000000000:1700000000000000000:${1000 + i}`,
      A,
      today(),
    ])
    await writeFile(file, JSON.stringify({ version: 1, entries }))
    const p = join(dir, "f")
    await writeFile(p, "x")
    const start = performance.now()
    const cache = await StatCache.load(file)
    cache.set(p, await bigStat(p), B)
    await cache.save()
    const ms = performance.now() - start
    expect(cache.size).toBe(1001)
    // Typically 2-5 ms; the bound only catches an accidental O(n^2) or a per-entry syscall.
    expect(ms).toBeLessThan(100)
  })
})
