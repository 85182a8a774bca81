/**
 * Seeded randomness for training: shuffling, masking, replay sampling. TensorFlow.js's own shuffle is not
 * seedable, so every random choice a training stage makes comes from here, from one seed, and its state
 * can be saved in a checkpoint and restored so a resumed run draws exactly what an uninterrupted one would.
 * The generator is pure-rand's xoroshiro128+ (a well-tested library; we only wrap it).
 */
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64"
import { uniformInt } from "pure-rand/distribution/uniformInt"
import { xoroshiro128plus, xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus"
import type { JumpableRandomGenerator } from "pure-rand/types/JumpableRandomGenerator"

/** A seeded random source whose state can be saved and restored. */
export interface Rng {
  /** an integer in [from, to], both included */
  readonly int: (from: number, to: number) => number
  /** a float in [0, 1) */
  readonly float: () => number
  /** the generator's state, for a checkpoint */
  readonly state: () => ReadonlyArray<number>
}

const wrap = (g: JumpableRandomGenerator): Rng => ({
  int: (from, to) => uniformInt(g, from, to),
  float: () => uniformFloat64(g),
  state: () => [...g.getState()],
})

/** A generator seeded with `seed` (an integer). */
export const seededRng = (seed: number): Rng => wrap(xoroshiro128plus(seed | 0))

/** A generator continuing from a saved `state()`. */
export const rngFromState = (state: ReadonlyArray<number>): Rng => wrap(xoroshiro128plusFromState([...state]))

/** A seed for a named purpose, derived from a base seed (so shuffling and masking draw independently). */
export const deriveSeed = (seed: number, purpose: string): number => {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  for (let i = 0; i < purpose.length; i++) {
    h ^= purpose.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h | 0
}

/** A permutation of 0..n-1 (Fisher-Yates). */
export const permutation = (n: number, rng: Rng): Int32Array => {
  const out = new Int32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i)
    const t = out[i]!
    out[i] = out[j]!
    out[j] = t
  }
  return out
}
