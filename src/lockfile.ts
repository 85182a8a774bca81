/**
 * `pipeline.lock`: written beside the pipeline after each run (DVC's `dvc.lock`). Committed to git, it records
 * exactly what produced the outputs: per stage its fingerprint, the params values, and the deps' and outs'
 * digests. `status` compares against it to say why a stage is stale. Deterministic order, one fact per line,
 * so diffs stay small. A lock file is only ever read for digests and values: no path in it is written to.
 */
import { readFile, rename, writeFile } from "node:fs/promises"
import { basename, dirname, extname, join } from "node:path"
import { parse, stringify } from "yaml"
import { type OutRecord, outRecord } from "./run-cache.js"

/** One out as recorded: what kind of thing it is and the digest of its content (the run cache's record). */
export type LockOut = OutRecord

/** One stage's entry. */
export interface LockStage {
  readonly fingerprint: string
  readonly params: Readonly<Record<string, unknown>>
  readonly deps: ReadonlyArray<{ readonly path: string; readonly digest: string }>
  readonly outs: ReadonlyArray<LockOut>
}

/** The whole lock file. */
export interface LockFile {
  readonly stages: Readonly<Record<string, LockStage>>
}

const HEADER = "# Written by `pipeline run`. Commit it: it records what produced the outputs. Do not edit.\n"

/** `pipelines/train.yaml` -> `pipelines/train.lock`. */
export const lockPathFor = (pipelineFile: string): string =>
  join(dirname(pipelineFile), `${basename(pipelineFile, extname(pipelineFile))}.lock`)

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v)

const readStage = (v: unknown): LockStage | undefined => {
  if (!isRecord(v) || typeof v.fingerprint !== "string") return undefined
  const deps = Array.isArray(v.deps)
    ? v.deps.filter(
        (d): d is { path: string; digest: string } =>
          isRecord(d) && typeof d.path === "string" && typeof d.digest === "string",
      )
    : []
  const outs: LockOut[] = []
  for (const o of Array.isArray(v.outs) ? v.outs : []) {
    if (
      !isRecord(o) ||
      typeof o.path !== "string" ||
      typeof o.digest !== "string" ||
      typeof o.size !== "number"
    )
      continue
    if (o.kind === "dir") outs.push(outRecord(o.path, { kind: "dir", digest: o.digest, size: o.size }))
    else if (o.kind === "file")
      outs.push(
        outRecord(o.path, {
          kind: "file",
          digest: o.digest,
          size: o.size,
          executable: o.executable === true,
        }),
      )
  }
  return { fingerprint: v.fingerprint, params: isRecord(v.params) ? v.params : {}, deps, outs }
}

/** Read a lock file; a missing or unreadable one is an empty lock (everything is then "never run"). */
export const readLock = async (file: string): Promise<LockFile> => {
  let doc: unknown
  try {
    doc = parse(await readFile(file, "utf8"))
  } catch {
    return { stages: {} }
  }
  const stages: Record<string, LockStage> = {}
  if (isRecord(doc) && isRecord(doc.stages)) {
    for (const [name, v] of Object.entries(doc.stages)) {
      const s = readStage(v)
      if (s) stages[name] = s
    }
  }
  return { stages }
}

/** Write the lock file atomically, stages in the given order (the pipeline's). */
export const writeLock = async (
  file: string,
  lock: LockFile,
  order: ReadonlyArray<string>,
): Promise<void> => {
  const stages: Record<string, unknown> = {}
  for (const name of order) {
    const s = lock.stages[name]
    if (!s) continue
    stages[name] = {
      fingerprint: s.fingerprint,
      ...(Object.keys(s.params).length > 0 ? { params: s.params } : {}),
      ...(s.deps.length > 0 ? { deps: s.deps.map((d) => ({ path: d.path, digest: d.digest })) } : {}),
      outs: s.outs.map((o) => ({
        path: o.path,
        kind: o.kind,
        digest: o.digest,
        size: o.size,
        ...(o.kind === "file" && o.executable ? { executable: true } : {}),
      })),
    }
  }
  const text = HEADER + stringify({ schema: 1, stages }, { lineWidth: 0, sortMapEntries: false })
  const tmp = `${file}.tmp-${process.pid}`
  await writeFile(tmp, text)
  await rename(tmp, file)
}
