/**
 * The weighted sum of the workers' gradient slots, in one place: every worker runs it before its update, and the
 * trainer's `gradients` call runs it for the caller, so all of them get the same float32s.
 */

/**
 * `out[i] = Σ_r weights[r] · slots[r · total + i]`, summed in float64 in rank order and rounded once. Slots of
 * weight 0 are skipped, not multiplied (they may hold a stale step's values). One and two slots, the common
 * cases, run as single fused loops; more accumulate slot by slot in float64 (the same sums: 0 + x is exact).
 */
export const weightedSum = (
  slots: Float32Array,
  total: number,
  weights: ReadonlyArray<number>,
  out: Float32Array,
): Float32Array => {
  const used = weights.flatMap((w, r) => (w === 0 ? [] : [{ base: r * total, w }]))
  if (used.length === 0) {
    out.fill(0)
  } else if (used.length === 1) {
    const { base, w } = used[0]!
    for (let i = 0; i < total; i++) out[i] = w * slots[base + i]!
  } else if (used.length === 2) {
    const [{ base: b0, w: w0 }, { base: b1, w: w1 }] = used as [
      { base: number; w: number },
      { base: number; w: number },
    ]
    for (let i = 0; i < total; i++) out[i] = w0 * slots[b0 + i]! + w1 * slots[b1 + i]!
  } else {
    const acc = new Float64Array(total)
    for (const { base, w } of used) for (let i = 0; i < total; i++) acc[i]! += w * slots[base + i]!
    out.set(acc)
  }
  return out
}
