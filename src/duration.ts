/**
 * Durations in pipeline YAML (`timeout`, `retry_delay`): a number of seconds, or a string of units in
 * descending order, e.g. `500ms`, `30s`, `10m`, `2h`, `1h30m`, `1.5s`. The same grammar is the `pattern`
 * of `#/definitions/duration` in schemas/pipeline.schema.json, so editors flag a bad one too.
 */

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const

// Units in descending order, each at most once; `m(?!s)` keeps `500ms` from reading as minutes.
const DURATION =
  /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$/

/** Milliseconds of a duration value as written in YAML, or `undefined` when it is not a duration. */
export const parseDuration = (value: unknown): number | undefined => {
  if (typeof value === "number")
    return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : undefined
  if (typeof value !== "string" || value === "") return undefined
  const match = DURATION.exec(value)
  if (match === null) return undefined
  const [, h, m, s, ms] = match
  const parts: ReadonlyArray<readonly [string | undefined, number]> = [
    [h, UNIT_MS.h],
    [m, UNIT_MS.m],
    [s, UNIT_MS.s],
    [ms, UNIT_MS.ms],
  ]
  return Math.round(parts.reduce((total, [n, unit]) => total + (n === undefined ? 0 : Number(n) * unit), 0))
}

/** The hint for a value that is not a duration. */
export const DURATION_HINT =
  'Write a number of seconds or a duration like "500ms", "30s", "10m", "2h" or "1h30m".'
