/**
 * The live `Artifacts` layer's `digestAll`: one call for a stage's deps or outs, the same answers as `digest`
 * path by path, in order, whether each path is answered at once (a small file, nothing there) or needs the
 * thread pool (a folder, a large file); and a failure names the path that failed. `save` of an out just hashed
 * stores the bytes that were hashed.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Either } from "effect"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { Artifacts } from "../src/artifacts.js"
import { artifactsLive } from "../src/artifacts-live.js"

let root: string
let outside: string
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "artifacts-"))
  outside = mkdtempSync(join(tmpdir(), "artifacts-outside-"))
  mkdirSync(join(root, "data", "folder"), { recursive: true })
  writeFileSync(join(root, "data", "small.txt"), "small\n")
  writeFileSync(join(root, "data", "folder", "a.txt"), "a\n")
  // past the size answered without the thread pool (256 KiB)
  writeFileSync(join(root, "data", "large.bin"), Buffer.alloc(300 * 1024, 7))
  symlinkSync(outside, join(root, "away"))
})
afterEach(() => {
  rmSync(root, { recursive: true, force: true })
  rmSync(outside, { recursive: true, force: true })
})

const withArtifacts = <A, E>(use: (a: Artifacts["Type"]) => Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(Artifacts, use).pipe(
        Effect.provide(
          artifactsLive({
            root,
            stateDir: join(root, ".pipeline"),
            storeDir: join(root, ".pipeline", "store"),
          }),
        ),
      ),
    ),
  )

describe("digestAll", () => {
  it("answers as `digest` does for each path, in order, sync and async paths mixed", async () => {
    const paths = ["data/large.bin", "data/small.txt", "data/missing.txt", "data/folder", "data/small.txt"]
    for (const role of ["dep", "out"] as const) {
      const [all, one] = await withArtifacts((a) =>
        Effect.all([a.digestAll(paths, role), Effect.forEach(paths, (p) => a.digest(p, role))]),
      )
      expect(all).toEqual(one)
      expect(all.map((s) => s?.kind)).toEqual(["file", "file", undefined, "dir", "file"])
      expect(all[0]?.size).toBe(300 * 1024)
    }
  })

  it("answers nothing for no paths", async () => {
    expect(await withArtifacts((a) => a.digestAll([], "dep"))).toEqual([])
  })

  it("fails naming the path that failed", async () => {
    writeFileSync(join(outside, "x.txt"), "x\n")
    const result = await withArtifacts((a) =>
      Effect.either(a.digestAll(["data/small.txt", "away/x.txt"], "out")),
    )
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      expect(result.left._tag).toBe("StoreIOError")
      expect(result.left.message).toContain("away")
      expect(result.left.message).toContain("leads outside the project")
    }
  })
})

describe("save", () => {
  it("stores a small out as the bytes that were hashed, without reading it again", async () => {
    const stored = await withArtifacts((a) =>
      Effect.gen(function* () {
        const [state] = yield* a.digestAll(["data/small.txt"], "out")
        if (!state) throw new Error("not hashed")
        // The file changes between its digest and the save: the store keeps what was hashed, under its name.
        writeFileSync(join(root, "data", "small.txt"), "SMALL\n")
        yield* a.save("data/small.txt", state)
        return { state, isStored: yield* a.isStored(state) }
      }),
    )
    expect(stored.isStored).toBe(true)
    const { digest } = stored.state
    const object = join(root, ".pipeline", "store", "objects", digest.slice(0, 2), digest.slice(2))
    expect(readFileSync(object, "utf8")).toBe("small\n")
  })

  it("still checks an out it did not just hash: one changed since fails rather than being stored wrongly", async () => {
    const failed = await withArtifacts((a) =>
      Effect.gen(function* () {
        const [state] = yield* a.digestAll(["data/small.txt"], "dep")
        if (!state) throw new Error("not hashed")
        writeFileSync(join(root, "data", "small.txt"), "SMALL\n")
        return yield* Effect.either(a.save("data/small.txt", state))
      }),
    )
    expect(Either.isLeft(failed) && failed.left.message).toMatch(/changed while it was being saved/)
  })
})
