/**
 * The model object: a configuration and its parameters as `tf.Variable`s keyed by Hugging Face name.
 * Which parameters train is the variables' own `trainable` flag, set through selectors
 * (see `selectParams`), so a training step is
 * `optimizer.minimize(() => loss(model, batch), true, trainableVariables(model))`.
 */
import * as tf from "@tensorflow/tfjs"
import type { BertConfig } from "./config.js"
import { initialValue, type ParamPart, paramPart, paramSpecs, selectParams } from "./params.js"

/** A BERT encoder with its pooler, masked-LM head and classification head. */
export interface BertModel {
  readonly config: BertConfig
  /** every parameter by Hugging Face name, in `paramSpecs` order */
  readonly params: ReadonlyMap<string, tf.Variable>
}

/** Options for `createBert`. */
export interface CreateOptions {
  /** seeds the initial weights; the same seed gives the same weights on every backend */
  readonly seed: number
  /**
   * Starting values by name (from a checkpoint); the rest are initialised. Each must have the
   * parameter's shape. The caller keeps ownership of these tensors.
   */
  readonly values?: ReadonlyMap<string, tf.Tensor>
}

/**
 * A freshly initialised model (BERT's initialisation: normal(0, initializer_range) weights, zero biases,
 * unit LayerNorm scales). Dispose it with `disposeBert`.
 */
export const createBert = (config: BertConfig, options: CreateOptions): BertModel => {
  const specs = paramSpecs(config)
  const known = new Set(specs.map((s) => s.name))
  for (const name of options.values?.keys() ?? []) {
    if (!known.has(name)) throw new Error(`the model has no parameter "${name}"`)
  }
  const params = new Map<string, tf.Variable>()
  try {
    for (const spec of specs) {
      const given = options.values?.get(spec.name)
      if (given !== undefined && !tf.util.arraysEqual(given.shape, spec.shape as Array<number>)) {
        throw new Error(
          `parameter "${spec.name}" has shape [${spec.shape.join(", ")}], the value [${given.shape.join(", ")}]`,
        )
      }
      const value = tf.tidy(() =>
        given === undefined ? initialValue(spec, config, options.seed) : given.toFloat(),
      )
      // Unnamed: tfjs variable names are global, and two models may be alive at once.
      params.set(spec.name, tf.variable(value, true))
      value.dispose()
    }
  } catch (e) {
    for (const v of params.values()) v.dispose()
    throw e
  }
  return { config, params }
}

/** Free the model's variables. */
export const disposeBert = (model: BertModel): void => {
  for (const v of model.params.values()) v.dispose()
}

/** A parameter by name; throws for a name the model does not have (a programming error). */
export const param = (model: BertModel, name: string): tf.Variable => {
  const v = model.params.get(name)
  if (v === undefined) throw new Error(`the model has no parameter "${name}"`)
  return v
}

/** The names the selectors pick (see `selectParams` for the selector forms). */
export const selectModelParams = (model: BertModel, selectors: ReadonlyArray<string>): Array<string> =>
  selectParams([...model.params.keys()], model.config.num_hidden_layers, selectors)

/**
 * Make exactly the selected parameters trainable and freeze the rest. Returns the trainable names.
 * `["all"]` unfreezes everything.
 */
export const trainOnly = (model: BertModel, selectors: ReadonlyArray<string>): Array<string> => {
  const chosen = new Set(selectModelParams(model, selectors))
  for (const [name, v] of model.params) v.trainable = chosen.has(name)
  return [...chosen]
}

/** Freeze (or unfreeze) the selected parameters, leaving the others as they are. */
export const setTrainable = (
  model: BertModel,
  selectors: ReadonlyArray<string>,
  trainable: boolean,
): void => {
  for (const name of selectModelParams(model, selectors)) model.params.get(name)!.trainable = trainable
}

/** The variables an optimizer should update. */
export const trainableVariables = (model: BertModel): Array<tf.Variable> =>
  [...model.params.values()].filter((v) => v.trainable)

/** Scalar counts of the model's parameters. */
export interface ParamCounts {
  readonly total: number
  readonly trainable: number
  readonly byPart: Readonly<Record<ParamPart, { readonly total: number; readonly trainable: number }>>
}

/** Count parameters, all and trainable, overall and per part. */
export const countParams = (model: BertModel): ParamCounts => {
  const byPart = {
    embeddings: { total: 0, trainable: 0 },
    encoder: { total: 0, trainable: 0 },
    pooler: { total: 0, trainable: 0 },
    mlm: { total: 0, trainable: 0 },
    classifier: { total: 0, trainable: 0 },
  }
  let total = 0
  let trainable = 0
  for (const [name, v] of model.params) {
    const part = byPart[paramPart(name)]
    part.total += v.size
    total += v.size
    if (v.trainable) {
      part.trainable += v.size
      trainable += v.size
    }
  }
  return { total, trainable, byPart }
}

/**
 * Replace parameter values. Each tensor must have the parameter's shape; it is cast to float32. The
 * caller keeps ownership of `values`.
 */
export const assignParams = (model: BertModel, values: ReadonlyMap<string, tf.Tensor>): void => {
  for (const [name, t] of values) {
    const v = param(model, name)
    if (!tf.util.arraysEqual(v.shape, t.shape)) {
      throw new Error(
        `parameter "${name}" has shape [${v.shape.join(", ")}], the value [${t.shape.join(", ")}]`,
      )
    }
    tf.tidy(() => v.assign(t.dtype === "float32" ? t : t.toFloat()))
  }
}
