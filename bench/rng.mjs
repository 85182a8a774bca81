// A seeded stream of integers, shared by the benchmarks that make random token batches.

/** A seeded stream of integers in [0, n) (mulberry32). */
export const rng = (seed) => {
  let s = seed
  return (n) => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) % n
  }
}
