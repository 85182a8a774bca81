/**
 * `with:` of a freeze stage, typed: which parameters a fine-tuning run trains. Light (see
 * training-options.ts).
 *
 * The selectors it produces are those of src/model/params.ts (`layer.N`, parts, globs).
 */
import { optionError } from "./training-options.js"

/** `with:` of a freeze stage. */
export interface FreezeOptions {
  readonly model: string
  /** n > 0: the top n encoder layers train; n < 0: the bottom |n|; 0: none; undefined: all */
  readonly trainableLayers: number | undefined
  readonly embeddings: boolean
  /** more parameters to train, by name glob or part */
  readonly patterns: ReadonlyArray<string>
  /** parameters to freeze whatever else says, by name glob or part */
  readonly frozen: ReadonlyArray<string>
}

/** Reads `with:` (already checked against the schema, defaults filled in). */
export const freezeOptions = (args: Readonly<Record<string, unknown>>): FreezeOptions => {
  const layers = args.trainable_layers
  const patterns = Array.isArray(args.trainable) ? args.trainable.map(String) : []
  const frozen = Array.isArray(args.frozen) ? args.frozen.map(String) : []
  for (const p of [...patterns, ...frozen])
    if (p.trim() === "")
      throw optionError(
        "an empty parameter pattern",
        "Remove it, or write a glob such as bert.encoder.layer.*.output.**.",
      )
  const trainableLayers = layers === "all" || layers === undefined ? undefined : Number(layers)
  return {
    model: String(args.model).replace(/\/+$/, ""),
    trainableLayers,
    embeddings: args.embeddings === true || (args.embeddings === undefined && trainableLayers === undefined),
    patterns,
    frozen,
  }
}

/**
 * The selectors of the trained parameters for a model with `numLayers` encoder layers: the chosen layers,
 * the embeddings if on, the pooler and the classifier (the task head always trains), and `patterns`.
 */
export const trainableSelectors = (o: FreezeOptions, numLayers: number): Array<string> => {
  const selectors = ["pooler", "classifier", ...o.patterns]
  if (o.embeddings) selectors.push("embeddings")
  const n = o.trainableLayers
  if (n === undefined) selectors.push("encoder")
  else if (n > 0) for (let i = Math.max(0, numLayers - n); i < numLayers; i++) selectors.push(`layer.${i}`)
  else if (n < 0) for (let i = 0; i < Math.min(numLayers, -n); i++) selectors.push(`layer.${i}`)
  return selectors
}
