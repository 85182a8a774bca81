/**
 * Batches as plain typed arrays, which cross to worker threads by structured clone, and their split into one
 * contiguous shard per worker. Pure: no TensorFlow.js here, so the main thread of a data-parallel run never
 * loads it.
 */

/** The label value the losses skip; the model layer's `IGNORE_INDEX` (PyTorch's `CrossEntropyLoss` default). */
export const IGNORE_INDEX = -100

/** What a step trains: the sequence-classification head or masked LM. */
export type LossKind = "classification" | "mlm"

/**
 * One batch of `rows` sequences of `seq` tokens, row-major, int32. `labels` is one class per row for
 * classification and a `[rows, seq]` grid for masked LM: the original token id at masked positions and
 * `IGNORE_INDEX` everywhere else (what `maskedTargets` reads).
 */
export interface HostBatch {
  readonly rows: number
  readonly seq: number
  readonly inputIds: Int32Array
  /** 1 for real tokens, 0 for padding; all ones when left out */
  readonly attentionMask?: Int32Array
  /** segment ids; all zeros when left out */
  readonly tokenTypeIds?: Int32Array
  readonly labels: Int32Array
}

/** What is wrong with a batch for this loss; empty when it is usable. */
export const batchProblems = (batch: HostBatch, lossKind: LossKind): Array<string> => {
  const problems: Array<string> = []
  const { rows, seq } = batch
  if (!Number.isInteger(rows) || rows < 1) problems.push(`rows must be a positive integer, not ${rows}`)
  if (!Number.isInteger(seq) || seq < 1) problems.push(`seq must be a positive integer, not ${seq}`)
  if (problems.length > 0) return problems
  const grid = rows * seq
  const sized = (name: string, a: Int32Array | undefined, want: number) => {
    if (a !== undefined && a.length !== want)
      problems.push(`${name} has ${a.length} values; ${rows} x ${seq} needs ${want}`)
  }
  sized("inputIds", batch.inputIds, grid)
  sized("attentionMask", batch.attentionMask, grid)
  sized("tokenTypeIds", batch.tokenTypeIds, grid)
  if (lossKind === "classification" && batch.labels.length !== rows)
    problems.push(`labels has ${batch.labels.length} values; classification needs one per row (${rows})`)
  if (lossKind === "mlm" && batch.labels.length !== grid)
    problems.push(
      `labels has ${batch.labels.length} values; masked LM needs a ${rows} x ${seq} grid (${grid})`,
    )
  return problems
}

/** How many labels a loss scores (those not `IGNORE_INDEX`): the weight of a shard's mean loss. */
export const scoredLabels = (labels: Int32Array): number => {
  let n = 0
  for (const label of labels) if (label !== IGNORE_INDEX) n++
  return n
}

/**
 * Split a batch into `parts` contiguous shards of rows, as equal as can be (the first `rows % parts` get one
 * more); `undefined` for a part that gets no row. The arrays are copies, so a shard clones only its own rows.
 */
export const shardBatch = (
  batch: HostBatch,
  lossKind: LossKind,
  parts: number,
): Array<HostBatch | undefined> => {
  const shards: Array<HostBatch | undefined> = []
  const base = Math.floor(batch.rows / parts)
  const extra = batch.rows % parts
  let start = 0
  for (let p = 0; p < parts; p++) {
    const rows = base + (p < extra ? 1 : 0)
    if (rows === 0) {
      shards.push(undefined)
      continue
    }
    const end = start + rows
    const grid = (a: Int32Array) => a.slice(start * batch.seq, end * batch.seq)
    shards.push({
      rows,
      seq: batch.seq,
      inputIds: grid(batch.inputIds),
      ...(batch.attentionMask === undefined ? {} : { attentionMask: grid(batch.attentionMask) }),
      ...(batch.tokenTypeIds === undefined ? {} : { tokenTypeIds: grid(batch.tokenTypeIds) }),
      labels: lossKind === "classification" ? batch.labels.slice(start, end) : grid(batch.labels),
    })
    start = end
  }
  return shards
}
