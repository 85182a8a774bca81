import { createHash } from "node:crypto"
import { lstat, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { checkSnapshot, type SnapshotKey, writeSnapshot } from "../src/snapshot.js"
import { type Observation, statKey } from "../src/stat-cache.js"

let root: string
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "pipeline-snapshot-"))
  await mkdir(join(root, ".pipeline"))
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")
const summary = { name: "p", params: {}, stages: [{ name: "s", fingerprint: "f".repeat(64) }] }

describe("the no-op snapshot", () => {
  it("records, for a recently written file the run hashed, the digest the run saw; the check compares the file with it", async () => {
    const pipelineFile = join(root, "pipeline.yaml")
    const out = join(root, "out.txt")
    await writeFile(pipelineFile, "stages: {}\n")
    await writeFile(out, "what the run hashed\n")
    const key: SnapshotKey = {
      file: pipelineFile,
      root,
      storeDir: join(root, "store"),
      sets: [],
      gpus: 0,
      version: "t",
    }
    const observe = (digest: string) => async (): Promise<(abs: string) => Observation | undefined> => {
      const seen = { key: statKey(await lstat(out, { bigint: true })), digest }
      return (abs) => (abs === out ? seen : undefined)
    }

    // The run saw these bytes: the snapshot holds, and a rerun with nothing changed is answered by it.
    expect(
      writeSnapshot(key, summary, [pipelineFile], [out], await observe(sha256("what the run hashed\n"))()),
    ).toBe(true)
    expect(checkSnapshot(key)).toEqual(summary)

    // The run saw other bytes than the file now holds, its stat unchanged (a write within one timestamp tick
    // after the run hashed it): the snapshot is written from the run's digest, and the check finds the file
    // differs, so the next run takes the full path.
    expect(writeSnapshot(key, summary, [pipelineFile], [out], await observe(sha256("other bytes\n"))())).toBe(
      true,
    )
    expect(checkSnapshot(key)).toBeUndefined()
  })
})
