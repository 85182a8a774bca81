/**
 * Masked-language-model inputs, as BERT was pretrained and as Hugging Face's
 * `DataCollatorForLanguageModeling` does it: each real, non-special token is chosen with probability
 * `rate` (15%); a chosen token becomes [MASK] 80% of the time, a random token 10%, and stays itself 10%;
 * the loss is taken at the chosen positions only. Seeded (see random.ts), so an evaluation that masks the
 * same rows with the same seed scores the same positions every time: "before" and "after" models in a
 * forgetting check are compared on identical inputs.
 */
import type { Batch } from "./batches.js"
import type { Rng } from "./random.js"

/** Ids the masking must know. */
export interface MaskingVocab {
  readonly maskId: number
  readonly vocabSize: number
  /** ids never chosen: [CLS], [SEP], [PAD], ... */
  readonly specialIds: ReadonlyArray<number>
}

/** Options of `maskBatch`. */
export interface MaskingOptions {
  /** the share of tokens chosen (BERT: 0.15) */
  readonly rate: number
  /** of the chosen, the share replaced by [MASK] (0.8) and by a random token (0.1); the rest stay */
  readonly maskShare?: number
  readonly randomShare?: number
}

/** A batch with some tokens masked, and the positions and original ids the loss is taken at. */
export interface MaskedBatch {
  readonly inputIds: Int32Array
  /** flat positions `row * cols + t`, ascending */
  readonly positions: Int32Array
  readonly targets: Int32Array
}

/**
 * Mask `batch`. A row with at least one maskable token always gets at least one chosen position (the
 * one picked at random among them if the draw chose none), so every row contributes to the loss.
 */
export const maskBatch = (
  batch: Batch,
  vocab: MaskingVocab,
  options: MaskingOptions,
  rng: Rng,
): MaskedBatch => {
  const maskShare = options.maskShare ?? 0.8
  const randomShare = options.randomShare ?? 0.1
  const special = new Set(vocab.specialIds)
  const inputIds = Int32Array.from(batch.inputIds)
  const positions: Array<number> = []
  const targets: Array<number> = []
  const { rows, cols } = batch
  const candidates: Array<number> = []
  for (let r = 0; r < rows; r++) {
    candidates.length = 0
    const chosen: Array<number> = []
    for (let t = 0; t < batch.lengths[r]!; t++) {
      const p = r * cols + t
      if (special.has(inputIds[p]!)) continue
      candidates.push(p)
      if (rng.float() < options.rate) chosen.push(p)
    }
    if (chosen.length === 0 && candidates.length > 0)
      chosen.push(candidates[rng.int(0, candidates.length - 1)]!)
    for (const p of chosen) {
      const original = inputIds[p]!
      positions.push(p)
      targets.push(original)
      const u = rng.float()
      if (u < maskShare) inputIds[p] = vocab.maskId
      else if (u < maskShare + randomShare) inputIds[p] = rng.int(0, vocab.vocabSize - 1)
    }
  }
  return { inputIds, positions: Int32Array.from(positions), targets: Int32Array.from(targets) }
}
