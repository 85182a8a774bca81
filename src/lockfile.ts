/**
 * `pipeline.lock`: written beside the pipeline after each run (DVC's `dvc.lock`). Committed to git, it records
 * exactly what produced the outputs: per stage its fingerprint, the params values, and the deps' and outs'
 * digests. `status` compares against it to say why a stage is stale. Deterministic order, one fact per line,
 * so diffs stay small. A lock file is only ever read for digests and values: no path in it is written to.
 */
import { readFile, rename, writeFile } from "node:fs/promises"
import { parse } from "yaml"
import { isDigest } from "./hash.js"
import type { ParseCache } from "./parse-cache.js"
import { type OutRecord, outRecord } from "./run-cache.js"
import { fastYaml } from "./yaml-fast.js"

/** One out as recorded: what kind of thing it is and the digest of its content (the run cache's record). */
export type LockOut = OutRecord

/** One stage's entry. */
export interface LockStage {
  readonly fingerprint: string
  readonly params: Readonly<Record<string, unknown>>
  readonly deps: ReadonlyArray<{ readonly path: string; readonly digest: string }>
  readonly outs: ReadonlyArray<LockOut>
}

/**
 * A record keyed by stage name, without a prototype: stage names are the user's ("constructor", "__proto__"),
 * and must neither find `Object.prototype`'s members nor set the prototype.
 */
export const noPrototype = <V>(): Record<string, V> => Object.create(null) as Record<string, V>

/** A stage's entry in the lock file, if it has one (only its own entries, whatever the name). */
export const lockedStage = (lock: LockFile, name: string): LockStage | undefined =>
  Object.hasOwn(lock.stages, name) ? lock.stages[name] : undefined

/** The whole lock file. */
export interface LockFile {
  readonly stages: Readonly<Record<string, LockStage>>
}

const HEADER = "# Written by `pipeline run`. Commit it: it records what produced the outputs. Do not edit.\n"

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
    // A digest that is not one (a damaged or hand-edited lock) is dropped: it could only name a wrong path.
    if (!isRecord(o) || typeof o.path !== "string" || !isDigest(o.digest) || typeof o.size !== "number")
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
export const readLock = async (file: string, cache?: ParseCache): Promise<LockFile> => {
  let text: string
  try {
    text = await readFile(file, "utf8")
  } catch {
    return { stages: noPrototype() }
  }
  let doc: unknown = cache?.get(file, text)
  if (doc === undefined) {
    try {
      doc = fastYaml(text)?.value ?? parse(text) // the fast path gives yaml's value, or declines
    } catch {
      return { stages: noPrototype() }
    }
    cache?.set(file, text, doc)
  }
  const stages = noPrototype<LockStage>()
  if (isRecord(doc) && isRecord(doc.stages)) {
    for (const [name, v] of Object.entries(doc.stages)) {
      const s = readStage(v)
      if (s) stages[name] = s
    }
  }
  return { stages }
}

const RESERVED = new Set(["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"])

/**
 * A string as a YAML scalar: plain when it cannot be read as anything else, else JSON-quoted (a JSON string
 * is a valid YAML double-quoted scalar). Digests stay plain unless all-digit.
 */
const scalar = (s: string): string =>
  (/^[A-Za-z_/][A-Za-z0-9_./+-]*$/.test(s) && !RESERVED.has(s.toLowerCase())) ||
  (/^[0-9a-f]{64}$/.test(s) && /[a-f]/.test(s))
    ? s
    : JSON.stringify(s)

/** Any JSON value as YAML: a string as a scalar, anything else in JSON's flow syntax (valid YAML). */
const flow = (v: unknown): string => (typeof v === "string" ? scalar(v) : JSON.stringify(v))

/**
 * The lock file's text. Written by hand rather than by `yaml`'s stringify, which took ~0.3 s for 1,000 stages:
 * the shape is fixed, and a unit test parses the output back with `yaml` to prove it is the same data.
 */
export const formatLock = (lock: LockFile, order: ReadonlyArray<string>): string => {
  const lines = [HEADER.trimEnd(), "schema: 1", "stages:"]
  for (const name of order) {
    const s = lockedStage(lock, name)
    if (!s) continue
    lines.push(`  ${scalar(name)}:`, `    fingerprint: ${scalar(s.fingerprint)}`)
    const params = Object.entries(s.params)
    if (params.length > 0) {
      lines.push("    params:")
      for (const [k, v] of params) lines.push(`      ${scalar(k)}: ${flow(v)}`)
    }
    if (s.deps.length > 0) {
      lines.push("    deps:")
      for (const d of s.deps)
        lines.push(`      - path: ${scalar(d.path)}`, `        digest: ${scalar(d.digest)}`)
    }
    lines.push(s.outs.length > 0 ? "    outs:" : "    outs: []")
    for (const o of s.outs) {
      lines.push(
        `      - path: ${scalar(o.path)}`,
        `        kind: ${o.kind}`,
        `        digest: ${scalar(o.digest)}`,
        `        size: ${o.size}`,
      )
      if (o.kind === "file" && o.executable) lines.push("        executable: true")
    }
  }
  if (lines.length === 3) lines[2] = "stages: {}"
  return `${lines.join("\n")}\n`
}

/** Write the lock file atomically, stages in the given order (the pipeline's); unchanged text is not rewritten. */
export const writeLock = async (
  file: string,
  lock: LockFile,
  order: ReadonlyArray<string>,
  cache?: ParseCache,
): Promise<void> => {
  const text = formatLock(lock, order)
  const old = await readFile(file, "utf8").catch(() => undefined)
  if (old === text) return
  const tmp = `${file}.tmp-${process.pid}`
  await writeFile(tmp, text)
  await rename(tmp, file)
  cache?.set(file, text, lockDocument(lock, order))
}

/** The data `formatLock`'s text parses to (a unit test holds the two together). */
export const lockDocument = (lock: LockFile, order: ReadonlyArray<string>): unknown => {
  const stages = noPrototype<unknown>()
  for (const name of order) {
    const s = lockedStage(lock, name)
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
  return { schema: 1, stages }
}
