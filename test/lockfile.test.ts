import { mkdtemp, readFile, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { readLock, writeLock } from "../src/lockfile.js"
import { lockFileFor } from "../src/pipeline-path.js"

describe("lock file", () => {
  it("sits beside the pipeline", () => {
    expect(lockFileFor("/p/pipeline.yaml")).toBe("/p/pipeline.lock")
    expect(lockFileFor("/p/pipelines/train.yml")).toBe("/p/pipelines/train.lock")
  })

  it("round-trips, in pipeline order, deterministically", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lock-"))
    const file = join(dir, "pipeline.lock")
    const lock = {
      stages: {
        b: {
          fingerprint: "f".repeat(64),
          params: {},
          deps: [],
          outs: [{ path: "out", kind: "dir" as const, digest: "d".repeat(64), size: 10 }],
        },
        a: {
          fingerprint: "e".repeat(64),
          params: { lr: 0.1 },
          deps: [{ path: "x", digest: "c".repeat(64) }],
          outs: [{ path: "a.bin", kind: "file" as const, digest: "a".repeat(64), size: 3, executable: true }],
        },
      },
    }
    await writeLock(file, lock, ["a", "b"])
    const text = await readFile(file, "utf8")
    expect(text.indexOf("  a:")).toBeLessThan(text.indexOf("  b:"))
    expect(await readLock(file)).toEqual({ stages: { a: lock.stages.a, b: lock.stages.b } })
    await writeLock(file, await readLock(file), ["a", "b"])
    expect(await readFile(file, "utf8")).toBe(text)
  })

  it("reads a missing or garbled lock file as empty", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lock-"))
    expect(await readLock(join(dir, "none.lock"))).toEqual({ stages: {} })
    await writeFile(join(dir, "bad.lock"), "stages: [1, 2\n")
    expect(await readLock(join(dir, "bad.lock"))).toEqual({ stages: {} })
    await writeFile(
      join(dir, "odd.lock"),
      "stages:\n  a: {fingerprint: 3}\n  b: {fingerprint: abc, outs: [{path: x}]}\n",
    )
    expect(await readLock(join(dir, "odd.lock"))).toEqual({
      stages: { b: { fingerprint: "abc", params: {}, deps: [], outs: [] } },
    })
  })
})

describe("lock file text", () => {
  it("parses back with yaml to exactly the data it records, whatever the names and values", async () => {
    const { parse } = await import("yaml")
    const { formatLock, lockDocument } = await import("../src/lockfile.js")
    const tricky = [
      "true",
      "null",
      "1",
      "0x10",
      ".5",
      "-",
      "a: b",
      "#x",
      "'q'",
      '"dq"',
      "with space",
      "ünï",
      "",
      "~",
      "@at",
    ]
    const lock = {
      stages: Object.fromEntries(
        tricky.map((name, i) => [
          name,
          {
            fingerprint: i % 2 ? "1".repeat(64) : "a1".repeat(32),
            params: { [name]: name, n: i, f: 0.5, big: 1e-7, list: [1, "x", null], obj: { "k: v": true } },
            deps: [{ path: `dir/${name}`, digest: "0".repeat(63) + "f" }],
            outs: [
              {
                path: name || "x",
                kind: "file" as const,
                digest: "f".repeat(64),
                size: i,
                executable: i % 2 === 0,
              },
            ],
          },
        ]),
      ),
    }
    const text = formatLock(lock, tricky)
    expect(parse(text)).toEqual(lockDocument(lock, tricky))
    expect(formatLock({ stages: {} }, [])).toMatch(/stages: \{\}\n$/)
    expect(parse(formatLock({ stages: {} }, []))).toEqual({ schema: 1, stages: {} })
  })
})
