/**
 * The parse cache: the data of a YAML file from its last parse, reused while the file's text is unchanged.
 * `yaml` builds a full syntax tree (for located errors) at ~0.4 MB/s; a 1,000-stage pipeline took ~0.3 s to
 * parse on every run. One entry per file, replaced when the file changes; a missing, stale or unreadable
 * entry is a miss, never an error.
 */
import { hash } from "node:crypto"
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import fastPkg from "js-yaml/package.json" with { type: "json" }
import pkg from "yaml/package.json" with { type: "json" }

const sha256 = (text: string): string => hash("sha256", text, "hex")

/** Only data that JSON carries exactly is cached (`.inf`, `.nan` and `-0` are not). */
const jsonExact = (value: unknown): boolean => {
  if (typeof value === "number") return Number.isFinite(value) && !Object.is(value, -0)
  if (Array.isArray(value)) return value.every(jsonExact)
  if (value !== null && typeof value === "object") return Object.values(value).every(jsonExact)
  return value === null || typeof value === "string" || typeof value === "boolean"
}

/** A parse cache in `dir`. */
export interface ParseCache {
  /** the data cached for this file with exactly this text, or undefined */
  readonly get: (file: string, text: string) => unknown
  readonly set: (file: string, text: string, value: unknown) => void
}

export const parseCacheAt = (dir: string): ParseCache => {
  const entry = (file: string) => join(dir, `${sha256(file)}.json`)
  const keyOf = (text: string) => sha256(`yaml ${pkg.version} js-yaml ${fastPkg.version}\0${text}`)
  return {
    get: (file, text) => {
      try {
        const cached = JSON.parse(readFileSync(entry(file), "utf8")) as { key?: unknown; value?: unknown }
        return cached.key === keyOf(text) ? cached.value : undefined
      } catch {
        return undefined
      }
    },
    set: (file, text, value) => {
      if (value === undefined || !jsonExact(value)) return
      try {
        mkdirSync(dir, { recursive: true })
        const tmp = `${entry(file)}.tmp-${process.pid}`
        writeFileSync(tmp, JSON.stringify({ key: keyOf(text), value }))
        renameSync(tmp, entry(file))
      } catch {
        // a cache that cannot be written only costs speed
      }
    },
  }
}
