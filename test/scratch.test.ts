/**
 * Scratch folders: which ones `pipeline gc` may remove. The executor's side (made before a stage runs, kept
 * on failure and interruption, removed on success) is tested end to end in e2e-scratch.test.ts.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import type { RunRecord, StageRecord } from "../src/run-record.js"
import { compactScratchJournal, openScratch, removeScratch, unusedScratch } from "../src/scratch.js"
import type { StageStatus } from "../src/status.js"

const base = mkdtempSync(join(tmpdir(), "pipeline-scratch-"))
afterAll(() => rmSync(base, { recursive: true, force: true }))
let roots = 0

const fp = (c: string): string => c.repeat(64)

const stageRecord = (status: StageStatus, fingerprint: string | null): StageRecord => ({
  status,
  reason: "",
  fingerprint,
  started_at: null,
  duration_ms: 0,
  attempts: 1,
  outs: {},
  log: null,
})

const record = (id: string, pipeline: string, stages: Readonly<Record<string, StageRecord>>): RunRecord => ({
  id,
  pipeline,
  name: "p",
  status: "failed",
  started_at: "2026-01-01T00:00:00.000Z",
  ended_at: null,
  duration_ms: null,
  params: {},
  argv: [],
  versions: {},
  stages,
})

describe("openScratch and removeScratch", () => {
  it("make the folder, keep what is in it when opened again, and remove it with its note", async () => {
    const root = join(base, `r${roots++}`)
    const dir = await openScratch(root, fp("a"), { pipeline: "/p/pipeline.yaml", stage: "train" })
    expect(dir).toBe(join(root, fp("a")))
    writeFileSync(join(dir, "checkpoint"), "step 10")
    expect(await openScratch(root, fp("a"), { pipeline: "/p/pipeline.yaml", stage: "train" })).toBe(dir)
    expect(existsSync(join(dir, "checkpoint"))).toBe(true)
    await removeScratch(root, fp("a"))
    expect(existsSync(dir)).toBe(false)
    expect(existsSync(join(root, `${fp("a")}.json`))).toBe(false)
  })
})

describe("unusedScratch", () => {
  it("keeps what the next run would resume from, and nothing else", async () => {
    const root = join(base, `r${roots++}`)
    const train = { pipeline: "/p/train.yaml", stage: "train" }
    // a: train's latest fingerprint, and it failed: the next run resumes
    await openScratch(root, fp("a"), train)
    // b: an older fingerprint of train: its inputs have changed since
    await openScratch(root, fp("b"), train)
    // c: used by a stage of a pipeline whose file is gone
    await openScratch(root, fp("c"), { pipeline: "/p/gone.yaml", stage: "x" })
    // d: a stage that succeeded with this fingerprint (the folder should have gone then)
    await openScratch(root, fp("d"), { pipeline: "/p/train.yaml", stage: "eval" })
    // e: no note: whose it is cannot be told
    mkdirSync(join(root, fp("e")))
    // f: a stage no record names (killed before any record had its fingerprint)
    await openScratch(root, fp("f"), { pipeline: "/p/train.yaml", stage: "new" })
    // g: made before the journal, with a note beside it: an older fingerprint of train
    mkdirSync(join(root, fp("7")))
    writeFileSync(join(root, `${fp("7")}.json`), JSON.stringify(train))
    // not scratch folders at all
    mkdirSync(join(root, "not-a-fingerprint"))
    writeFileSync(join(root, fp("9")), "a file")

    const records = [
      record("1", "/p/train.yaml", {
        train: stageRecord("failed", fp("b")),
        eval: stageRecord("ran", fp("d")),
      }),
      record("2", "/p/train.yaml", { train: stageRecord("cancelled", fp("a")) }),
      // a later run that skipped train tells nothing about it
      record("3", "/p/train.yaml", { train: stageRecord("skipped", null) }),
      record("4", "/p/other.yaml", { train: stageRecord("ran", fp("a")) }),
    ]
    const exists = (file: string) => file !== "/p/gone.yaml"
    expect(await unusedScratch(root, records, exists)).toEqual([fp("7"), fp("b"), fp("c"), fp("d")])

    // --older-than: anything not used since then goes too
    const old = new Date("2025-01-01T00:00:00Z")
    utimesSync(join(root, fp("e")), old, old)
    expect(await unusedScratch(root, records, exists, Date.parse("2025-06-01T00:00:00Z"))).toEqual([
      fp("7"),
      fp("b"),
      fp("c"),
      fp("d"),
      fp("e"),
    ])
  })

  it("reads the journal's last line for a folder, and compacts it to the folders still there", async () => {
    const root = join(base, `r${roots++}`)
    openScratch(root, fp("a"), { pipeline: "/p/train.yaml", stage: "old-name" })
    openScratch(root, fp("a"), { pipeline: "/p/train.yaml", stage: "train" })
    openScratch(root, fp("b"), { pipeline: "/p/train.yaml", stage: "eval" })
    writeFileSync(join(root, "owners.jsonl"), "not json\n", { flag: "a" }) // a line cut short by a crash
    const records = [record("1", "/p/train.yaml", { train: stageRecord("ran", fp("a")) })]
    expect(await unusedScratch(root, records, () => true)).toEqual([fp("a")])
    removeScratch(root, fp("a"))
    await compactScratchJournal(root)
    expect(readFileSync(join(root, "owners.jsonl"), "utf8")).toBe(
      `${JSON.stringify({ fp: fp("b"), pipeline: "/p/train.yaml", stage: "eval" })}\n`,
    )
  })

  it("finds nothing where there is no scratch folder", async () => {
    expect(await unusedScratch(join(base, "missing"), [], () => true)).toEqual([])
  })
})
