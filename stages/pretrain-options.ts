/**
 * `with:` of a pretrain stage, typed: the general corpus, the encoder's size (or a Hugging Face checkpoint
 * to start from), masked-LM settings and the shared training settings. Light (see training-options.ts).
 */
import { optionError, type TrainingSettings, trainingSettings } from "./training-options.js"

/** The encoder's size in `with.model`. */
export interface ModelSize {
  readonly hiddenSize: number
  readonly layers: number
  readonly heads: number
  readonly intermediateSize: number
  readonly maxPosition: number | undefined
}

/** `with:` of a pretrain stage. */
export interface PretrainOptions extends TrainingSettings {
  readonly data: string
  /** a local Hugging Face checkpoint folder (config.json + model.safetensors) to start from */
  readonly from: string | undefined
  readonly size: ModelSize
  readonly maskRate: number
}

/** Reads `with:` (already checked against the schema, defaults filled in). */
export const pretrainOptions = (args: Readonly<Record<string, unknown>>): PretrainOptions => {
  const m = (args.model ?? {}) as Record<string, unknown>
  const hiddenSize = typeof m.hidden_size === "number" ? m.hidden_size : 64
  const heads =
    typeof m.num_attention_heads === "number" ? m.num_attention_heads : Math.max(1, hiddenSize / 32)
  if (hiddenSize % heads !== 0)
    throw optionError(
      `model.hidden_size (${hiddenSize}) is not a multiple of model.num_attention_heads (${heads})`,
      "Each attention head gets hidden_size / num_attention_heads dimensions: pick sizes that divide.",
    )
  if (typeof args.from === "string" && args.model !== undefined)
    throw optionError(
      'both "from" and "model" are set',
      "A checkpoint brings its own size: remove `model`, or remove `from` to start from random weights.",
    )
  return {
    ...trainingSettings(args, { learningRate: 5e-4, epochs: 1 }),
    data: String(args.data).replace(/\/+$/, ""),
    from: typeof args.from === "string" ? args.from.replace(/\/+$/, "") : undefined,
    size: {
      hiddenSize,
      layers: typeof m.num_hidden_layers === "number" ? m.num_hidden_layers : 2,
      heads,
      intermediateSize: typeof m.intermediate_size === "number" ? m.intermediate_size : 4 * hiddenSize,
      maxPosition: typeof m.max_position_embeddings === "number" ? m.max_position_embeddings : undefined,
    },
    maskRate: typeof args.mask_rate === "number" ? args.mask_rate : 0.15,
  }
}
