/**
 * "Did you mean ...?" for every unknown name the user can mistype: keys, stages, params, kinds.
 */

/**
 * Edit distance with adjacent transpositions (optimal string alignment): insert, delete, substitute and
 * swap two neighbours each cost 1, so the common typo `inptu` is one edit from `input`.
 */
export const editDistance = (a: string, b: string): number => {
  if (a === b) return 0
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1)
    }
  return d[a.length]![b.length]!
}

// Dotted names (`train.lr`) share their leading segments with their siblings; only the segments that
// differ say how close two names are, so `train.batch` is not taken for a typo of `train.epochs`.
const differingParts = (a: string, b: string): readonly [string, string] => {
  const as = a.split(".")
  const bs = b.split(".")
  let i = 0
  while (i < as.length - 1 && i < bs.length - 1 && as[i] === bs[i]) i++
  return [as.slice(i).join("."), bs.slice(i).join(".")]
}

/**
 * The candidate closest to `word`, if it is close enough to be a plausible typo: at most a third of the
 * longer name's letters differ (at least one may), so `cmdd` finds `cmd` but `x` does not find `env`.
 * A case-only difference always counts. Ties go to the earlier candidate.
 */
export const closest = (word: string, candidates: Iterable<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of candidates) {
    if (candidate === word) continue
    const [a, b] = differingParts(word.toLowerCase(), candidate.toLowerCase())
    const distance = a === b ? 0.5 : editDistance(a, b)
    const limit = Math.max(1, Math.floor(Math.max(a.length, b.length) / 3))
    if (distance <= limit && distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

/** A quoted, comma-separated list for hints: `"a", "b", "c"`. */
export const quotedList = (names: Iterable<string>): string => [...names].map((n) => `"${n}"`).join(", ")

/**
 * A hint sentence for an unknown name: `Did you mean "x"?` when one is close, else `fallback` followed by
 * the list of known names (or `none` when there are none).
 */
export const suggestion = (
  word: string,
  candidates: ReadonlyArray<string>,
  fallback: { readonly listed: string; readonly none: string },
): string => {
  const match = closest(word, candidates)
  if (match !== undefined) return `Did you mean "${match}"?`
  if (candidates.length === 0) return fallback.none
  return `${fallback.listed} ${quotedList(candidates)}.`
}
