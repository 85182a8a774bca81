/**
 * `train`: fine-tunes a pretrained encoder with a classification head on a labeled, tokenized dataset.
 * What trains comes from a freeze stage (`with.freeze`; default everything). The classifier head starts
 * fresh (seeded) unless the model already classifies the same labels. Two forgetting mitigations: L2-SP
 * toward the pretrained weights, and replay of general-corpus masked-LM batches. Checkpoints each epoch in
 * the scratch folder and resumes from them after an interruption (training-run.ts).
 */
import { readFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { type BertModel, createBert, disposeBert, trainOnly } from "../src/model/index.js"
import type { Objective } from "../src/train/loop.js"
import { loadModelFrom } from "../src/train/model-dir.js"
import { classificationObjective, scoreClassifier, withL2sp, withReplay } from "../src/train/objectives.js"
import { openTokenData } from "../src/train/token-data.js"
import { type StageImplementation, StageInputError } from "./api.js"
import { FREEZE_FORMAT, type FreezeFile } from "./freeze.js"
import { trainOptions } from "./train-options.js"
import { finishTraining, releaseBackend, runLoop, startCompute } from "./training-run.js"

const sameList = (a: unknown, b: ReadonlyArray<string>) =>
  Array.isArray(a) && a.length === b.length && a.every((x, i) => x === b[i])

/** Read a freeze stage's `freeze.json`. */
const readFreeze = async (dir: string, shown: string): Promise<FreezeFile> => {
  let file: FreezeFile
  try {
    file = JSON.parse(await readFile(join(dir, "freeze.json"), "utf8")) as FreezeFile
  } catch (e) {
    throw new StageInputError(
      `with.freeze: cannot read ${shown}/freeze.json (${e instanceof Error ? e.message : String(e)})\n   Point it at a freeze stage's out folder, e.g. \${stages.freeze.outs[0]}.`,
    )
  }
  if (file.format !== FREEZE_FORMAT)
    throw new StageInputError(
      `with.freeze: ${shown}/freeze.json is not a freeze stage's output\n   Rerun the freeze stage.`,
    )
  return file
}

export const run: StageImplementation = async (ctx) => {
  const o = trainOptions(ctx.args)
  const outDir = ctx.outs[0]!
  const choice = await startCompute(ctx)
  let pretrained: BertModel | undefined
  let model: BertModel | undefined
  try {
    const data = await openTokenData(resolve(ctx.root, o.data), "with.data")
    const { manifest } = data
    const labels = manifest.labels
    if (labels === null || labels.length < 2)
      throw new StageInputError(
        `with.data: ${o.data} has ${labels === null ? "no labels" : "a single label"}; a classifier needs at least two\n   Ingest a labeled dataset (label_field, or a folder per label).`,
      )
    const train = await data.split("train")
    const validation =
      manifest.splits.validation !== undefined && manifest.splits.validation.rows > 0
        ? await data.split("validation")
        : undefined
    if (o.earlyStopping !== undefined && validation === undefined)
      throw new StageInputError(
        `with.early_stopping: ${o.data} has no validation rows to stop on\n   Give the ingest stage a validation share (split), or remove early_stopping.`,
      )
    const loaded = await loadModelFrom(resolve(ctx.root, o.model), "with.model")
    pretrained = loaded.model
    const base = pretrained.config
    if (base.vocab_size !== manifest.vocab_size)
      throw new StageInputError(
        `with.data: ${o.data} was tokenized with ${manifest.vocab_size} tokens, the model's vocabulary has ${base.vocab_size}\n   Tokenize the task data with the model's vocabulary: set the tokenize stage's vocab to the pretraining corpus's tokenizer.json.`,
      )
    if (train.cols > base.max_position_embeddings)
      throw new StageInputError(
        `with.data: rows are up to ${train.cols} tokens, the model takes at most ${base.max_position_embeddings}\n   Tokenize with max_length ${base.max_position_embeddings} or less.`,
      )
    // A fresh head for these labels, unless the model already classifies exactly them.
    const keepHead = sameList(loaded.metadata.labels, labels)
    const dropout = o.dropout
    const config = {
      ...base,
      num_labels: labels.length,
      ...(o.pooling === undefined ? {} : { classifier_pooling: o.pooling }),
      ...(dropout === undefined
        ? {}
        : { hidden_dropout_prob: dropout, attention_probs_dropout_prob: dropout }),
    }
    const values = new Map([...pretrained.params].filter(([n]) => keepHead || !n.startsWith("classifier.")))
    model = createBert(config, { seed: o.seed, values })

    let names: string[]
    if (o.freeze === undefined) names = trainOnly(model, ["all"])
    else {
      const freeze = await readFreeze(resolve(ctx.root, o.freeze), o.freeze)
      if (freeze.num_hidden_layers !== config.num_hidden_layers)
        throw new StageInputError(
          `with.freeze: ${o.freeze} was made for a model with ${freeze.num_hidden_layers} layers, this one has ${config.num_hidden_layers}\n   Point the freeze stage's model at the same model as this stage's.`,
        )
      const chosen = new Set(freeze.trainable)
      for (const [n, v] of model.params) v.trainable = chosen.has(n)
      names = [...model.params.keys()].filter((n) => chosen.has(n))
    }
    const trainable = new Map(names.map((n) => [n, model!.params.get(n)!]))
    const pad = manifest.special_ids.pad
    let objective: Objective = classificationObjective(model, train, validation, pad, o.seed)
    if (o.l2sp > 0) objective = withL2sp(objective, trainable, pretrained.params, o.l2sp)
    if (o.replay !== undefined) {
      const general = await openTokenData(resolve(ctx.root, o.replay.data), "with.replay.data")
      if (general.manifest.vocab_size !== manifest.vocab_size || general.masking === undefined)
        throw new StageInputError(
          `with.replay.data: ${o.replay.data} was tokenized with a different vocabulary (${general.manifest.vocab_size} tokens) than the task data (${manifest.vocab_size})\n   Replay the corpus the model was pretrained on, tokenized with the same tokenizer.`,
        )
      objective = withReplay(
        objective,
        model,
        await general.split("train"),
        general.manifest.special_ids.pad,
        general.masking,
        {
          fraction: o.replay.fraction,
          weight: o.replay.weight,
          rate: o.replay.maskRate,
          batchSize: o.batchSize,
          seed: o.seed,
        },
      )
    }
    const result = await runLoop(ctx, model, trainable, objective, o, { kind: "train", args: ctx.args })
    const final = validation === undefined ? undefined : await scoreClassifier(model, validation, pad)
    const trainableCount = names.reduce((a, n) => a + model!.params.get(n)!.size, 0)
    await finishTraining(ctx, {
      outDir,
      model,
      result,
      title: "fine-tuning (classification): loss",
      metadata: { task: "classification", labels, vocab_size: manifest.vocab_size },
      metrics: {
        task: "classification",
        labels,
        trainable_parameters: trainableCount,
        pooling: config.classifier_pooling ?? "cls",
        l2sp: o.l2sp,
        replay: o.replay === undefined ? null : { fraction: o.replay.fraction, weight: o.replay.weight },
      },
      validation: final,
      choice,
      // the model folder carries its vocabulary, as a pretrain stage's does
      tokenizer: join(data.dir, manifest.tokenizer),
    })
  } finally {
    if (model !== undefined) disposeBert(model)
    if (pretrained !== undefined) disposeBert(pretrained)
    tf.disposeVariables()
    await releaseBackend()
  }
}
