/**
 * `pretrain`: masked-LM pretraining of a BERT-style encoder on a general corpus, the embedded stand-in for
 * a downloaded foundation model; or, with `from`, a local Hugging Face checkpoint (bert-base-chinese, say)
 * loaded, scored and optionally trained further. Writes the training outputs (training-run.ts) and a copy
 * of the corpus's `tokenizer.json`, so the model folder carries the vocabulary its ids mean.
 */
import { join, resolve } from "node:path"
import * as tf from "@tensorflow/tfjs"
import {
  type BertModel,
  bertConfig,
  createBert,
  disposeBert,
  loadHfCheckpoint,
  trainOnly,
} from "../src/model/index.js"
import { mlmObjective, scoreMlm } from "../src/train/objectives.js"
import { openTokenData } from "../src/train/token-data.js"
import { type StageImplementation, StageInputError } from "./api.js"
import { pretrainOptions } from "./pretrain-options.js"
import { finishTraining, releaseBackend, runLoop, startCompute } from "./training-run.js"

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e))

export const run: StageImplementation = async (ctx) => {
  const o = pretrainOptions(ctx.args)
  const outDir = ctx.outs[0]!
  const choice = await startCompute(ctx)
  let model: BertModel | undefined
  try {
    const data = await openTokenData(resolve(ctx.root, o.data), "with.data")
    const { manifest } = data
    if (data.masking === undefined)
      throw new StageInputError(
        `with.data: the vocabulary of ${o.data} has no [MASK] token, which masked-LM pretraining needs\n   Tokenize with a vocabulary that has [MASK] (a trained one always has).`,
      )
    const train = await data.split("train")
    const validation = manifest.splits.validation === undefined ? undefined : await data.split("validation")
    if (o.from !== undefined) {
      try {
        model = (await loadHfCheckpoint(resolve(ctx.root, o.from), { seed: o.seed })).model
      } catch (e) {
        throw new StageInputError(
          `with.from: ${describe(e)}\n   Point it at a Hugging Face BERT checkpoint folder (config.json and model.safetensors).`,
        )
      }
      if (model.config.vocab_size !== manifest.vocab_size)
        throw new StageInputError(
          `with.from: the checkpoint's vocabulary has ${model.config.vocab_size} tokens, ${o.data} was tokenized with ${manifest.vocab_size}\n   Tokenize the corpus with the checkpoint's own vocab.txt (tokenize's \`vocab\`).`,
        )
    } else {
      const dropout = o.dropout ?? 0.1
      model = createBert(
        bertConfig({
          vocab_size: manifest.vocab_size,
          hidden_size: o.size.hiddenSize,
          num_hidden_layers: o.size.layers,
          num_attention_heads: o.size.heads,
          intermediate_size: o.size.intermediateSize,
          max_position_embeddings: o.size.maxPosition ?? Math.max(manifest.max_length, train.cols),
          type_vocab_size: 2,
          num_labels: 2,
          pad_token_id: manifest.special_ids.pad,
          hidden_dropout_prob: dropout,
          attention_probs_dropout_prob: dropout,
        }),
        { seed: o.seed },
      )
    }
    if (train.cols > model.config.max_position_embeddings)
      throw new StageInputError(
        `with.data: rows are up to ${train.cols} tokens, the model takes at most ${model.config.max_position_embeddings}\n   Tokenize with max_length ${model.config.max_position_embeddings} or less, or raise model.max_position_embeddings.`,
      )
    // The masked-LM task trains the embeddings, the encoder and its head; the pooler and classifier wait for a task.
    const names = trainOnly(model, ["embeddings", "encoder", "mlm"])
    const trainable = new Map(names.map((n) => [n, model!.params.get(n)!]))
    const pad = manifest.special_ids.pad
    const objective = mlmObjective(model, train, validation, pad, data.masking, o.maskRate, o.seed)
    const result = await runLoop(ctx, model, trainable, objective, o, { kind: "pretrain", args: ctx.args })
    const final =
      validation === undefined
        ? undefined
        : await scoreMlm(model, validation, pad, data.masking, o.maskRate, o.seed)
    await finishTraining(ctx, {
      outDir,
      model,
      result,
      title: `${o.from === undefined ? "pretraining" : "further pretraining"} (masked LM): loss`,
      metadata: { task: "mlm", labels: null, vocab_size: manifest.vocab_size },
      metrics: { task: "mlm", from: o.from ?? null },
      validation: final,
      choice,
      tokenizer: join(data.dir, manifest.tokenizer),
    })
  } finally {
    if (model !== undefined) disposeBert(model)
    tf.disposeVariables()
    await releaseBackend()
  }
}
