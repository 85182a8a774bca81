/**
 * The encoder's parameters: their Hugging Face names and shapes, how they start, and how to pick some of
 * them (for freezing) by part, by layer or by name pattern.
 *
 * Names are exactly `BertForPreTraining`'s, with `classifier.*` from `BertForSequenceClassification`, so
 * a checkpoint maps onto them one to one. Linear weights are `[out, in]` as PyTorch stores them.
 */
import * as tf from "@tensorflow/tfjs"
import type { BertConfig } from "./config.js"
import { ParamSelectorInvalid } from "./errors.js"

/** How a parameter starts: BERT's `_init_weights`. */
export type ParamInit = "normal" | "zeros" | "ones"

/** One parameter's name, shape and initialiser. */
export interface ParamSpec {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly init: ParamInit
}

/** The model's parts, for selecting parameters. */
export type ParamPart = "embeddings" | "encoder" | "pooler" | "mlm" | "classifier"

/** Every parameter the configuration asks for, in a stable order (embeddings, layers, pooler, heads). */
export const paramSpecs = (c: BertConfig): Array<ParamSpec> => {
  const d = c.hidden_size
  const specs: Array<ParamSpec> = []
  const linear = (prefix: string, out: number, inp: number) => {
    specs.push({ name: `${prefix}.weight`, shape: [out, inp], init: "normal" })
    specs.push({ name: `${prefix}.bias`, shape: [out], init: "zeros" })
  }
  const layerNorm = (prefix: string) => {
    specs.push({ name: `${prefix}.weight`, shape: [d], init: "ones" })
    specs.push({ name: `${prefix}.bias`, shape: [d], init: "zeros" })
  }
  specs.push({ name: "bert.embeddings.word_embeddings.weight", shape: [c.vocab_size, d], init: "normal" })
  specs.push({
    name: "bert.embeddings.position_embeddings.weight",
    shape: [c.max_position_embeddings, d],
    init: "normal",
  })
  specs.push({
    name: "bert.embeddings.token_type_embeddings.weight",
    shape: [c.type_vocab_size, d],
    init: "normal",
  })
  layerNorm("bert.embeddings.LayerNorm")
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `bert.encoder.layer.${i}`
    linear(`${p}.attention.self.query`, d, d)
    linear(`${p}.attention.self.key`, d, d)
    linear(`${p}.attention.self.value`, d, d)
    linear(`${p}.attention.output.dense`, d, d)
    layerNorm(`${p}.attention.output.LayerNorm`)
    linear(`${p}.intermediate.dense`, c.intermediate_size, d)
    linear(`${p}.output.dense`, d, c.intermediate_size)
    layerNorm(`${p}.output.LayerNorm`)
  }
  linear("bert.pooler.dense", d, d)
  linear("cls.predictions.transform.dense", d, d)
  layerNorm("cls.predictions.transform.LayerNorm")
  specs.push({ name: "cls.predictions.bias", shape: [c.vocab_size], init: "zeros" })
  linear("classifier", c.num_labels, d)
  return specs
}

/** The part of the model a parameter belongs to. */
export const paramPart = (name: string): ParamPart =>
  name.startsWith("bert.embeddings.")
    ? "embeddings"
    : name.startsWith("bert.encoder.")
      ? "encoder"
      : name.startsWith("bert.pooler.")
        ? "pooler"
        : name.startsWith("cls.")
          ? "mlm"
          : "classifier"

/** The encoder layer a parameter belongs to, if any. */
export const paramLayer = (name: string): number | undefined => {
  const m = /^bert\.encoder\.layer\.(\d+)\./.exec(name)
  return m === null ? undefined : Number(m[1])
}

/**
 * A parameter's starting value, seeded. The draw depends on the seed and the parameter's name only, so
 * adding a head or a layer does not change how the others start.
 */
export const initialValue = (spec: ParamSpec, c: BertConfig, seed: number): tf.Tensor =>
  tf.tidy(() => {
    switch (spec.init) {
      case "zeros":
        return tf.zeros(spec.shape as Array<number>)
      case "ones":
        return tf.ones(spec.shape as Array<number>)
      case "normal": {
        const w = tf.randomNormal(
          spec.shape as Array<number>,
          0,
          c.initializer_range,
          "float32",
          nameSeed(seed, spec.name),
        )
        // Like nn.Embedding(padding_idx=pad_token_id): the padding token's vector starts at zero.
        if (spec.name !== "bert.embeddings.word_embeddings.weight") return w
        // Tiled as float32, cast after: tfjs-backend-wasm 4.22's Tile fails on bool tensors (`Aborted()`, or not,
        // depending on what the heap holds).
        const isPad = tf
          .oneHot(tf.tensor1d([c.pad_token_id], "int32"), c.vocab_size, 1, 0, "float32")
          .reshape([c.vocab_size, 1])
          .tile([1, c.hidden_size])
          .cast("bool")
        return tf.where(isPad, tf.zerosLike(w), w)
      }
    }
  })

/** A 31-bit seed from a base seed and a name (FNV-1a). */
const nameSeed = (seed: number, name: string): number => {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0) % 0x7fffffff
}

const PARTS: ReadonlyArray<ParamPart> = ["embeddings", "encoder", "pooler", "mlm", "classifier"]

/** A glob over dotted names: `*` matches within one segment, `**` across segments. */
const globRegExp = (glob: string): RegExp =>
  new RegExp(
    `^${glob
      .split(/(\*\*|\*)/)
      .map((piece) =>
        piece === "**" ? ".*" : piece === "*" ? "[^.]*" : piece.replace(/[.+?^${}()|[\]\\]/g, "\\$&"),
      )
      .join("")}$`,
  )

/**
 * The names among `names` that the selectors pick (their union, in `names`' order). A selector is
 * - `all`, or a part: `embeddings`, `encoder`, `pooler`, `mlm`, `classifier`;
 * - `layer.N`: encoder layer N, where a negative N counts from the top (`layer.-1` is the last);
 * - a glob over parameter names: `bert.encoder.layer.*.attention.**`.
 * A selector that picks nothing throws `ParamSelectorInvalid`: it is a typo or a layer that does not exist.
 */
export const selectParams = (
  names: ReadonlyArray<string>,
  numLayers: number,
  selectors: ReadonlyArray<string>,
): Array<string> => {
  const picked = new Set<string>()
  for (const selector of selectors) {
    const match = matcher(selector, numLayers)
    const hits = names.filter(match)
    if (hits.length === 0) {
      throw new ParamSelectorInvalid({
        selector,
        message:
          `parameter selector "${selector}" matches no parameter; use all, ${PARTS.join(", ")}, ` +
          `layer.N (0 to ${numLayers - 1}, or -1 for the last) or a glob such as bert.encoder.layer.*.output.**`,
      })
    }
    for (const h of hits) picked.add(h)
  }
  return names.filter((n) => picked.has(n))
}

const matcher = (selector: string, numLayers: number): ((name: string) => boolean) => {
  if (selector === "all") return () => true
  if ((PARTS as ReadonlyArray<string>).includes(selector)) return (n) => paramPart(n) === selector
  const layer = /^layer\.(-?\d+)$/.exec(selector)
  if (layer !== null) {
    const k = Number(layer[1])
    const index = k < 0 ? numLayers + k : k
    return (n) => paramLayer(n) === index
  }
  const re = globRegExp(selector)
  return (n) => re.test(n)
}
