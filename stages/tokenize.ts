/**
 * `tokenize`: turns an ingest stage's splits into token ids for a BERT model, with a given vocabulary
 * (`vocab`: a vocab.txt or tokenizer.json) or one trained here on the training texts (`train_vocab`).
 * Writes into its out folder `tokenizer.json` (the tokenizer used, loadable by Hugging Face too), the
 * token artifact (`tokens.json` and per split `<split>.ids.bin`, `.lengths.bin`, `.labels.bin`: see
 * `tokenize-format.ts`) and `stats.json` (tokens per example, truncation, unknown tokens, padding).
 */
import { access, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { extname, join, resolve } from "node:path"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { assemble } from "../src/tokenizer/encoding.js"
import {
  type BasicOptions,
  type BertTokenizer,
  CASED,
  formatTokenizerJson,
  loadTokenizer,
  trainBertTokenizer,
  UNCASED,
} from "../src/tokenizer/index.js"
import { type StageImplementation, StageInputError } from "./api.js"
import { type TokenizeOptions, tokenizeOptions } from "./tokenize-options.js"

export { type TokenizeOptions, type TrainVocabOptions, tokenizeOptions } from "./tokenize-options.js"

import { dataError } from "./ingest-errors.js"
import { SPLITS } from "./ingest-split.js"
import {
  idsDtype,
  type SplitArrays,
  type SplitTokens,
  TOKENS_FORMAT,
  type TokensManifest,
  writeSplit,
} from "./tokenize-format.js"

/** A row of a split file. */
interface DataRow {
  readonly text: string
  readonly label: string | undefined
  readonly line: number
}

/** The rows of a JSONL file of `{"text", "label"?}` objects (an ingest split). */
const readRows = async (root: string, file: string): Promise<DataRow[]> => {
  const text = await readFile(resolve(root, file), "utf8")
  const rows: DataRow[] = []
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue
    let value: unknown
    try {
      value = JSON.parse(line)
    } catch (e) {
      throw dataError({
        place: { file, line: i + 1 },
        problem: `invalid JSON: ${e instanceof Error ? e.message : String(e)}`,
        hint: "`data` should be an ingest stage's out folder; rerun that stage, or fix the line.",
        source: line,
      })
    }
    const row = value as { text?: unknown; label?: unknown }
    if (typeof row.text !== "string")
      throw dataError({
        place: { file, line: i + 1 },
        problem: 'the row has no "text" string',
        hint: 'Each line must be {"text": "...", "label": "..."}, as ingest writes them.',
        source: line,
      })
    rows.push({ text: row.text, label: typeof row.label === "string" ? row.label : undefined, line: i + 1 })
  }
  return rows
}

/** The texts of a vocabulary corpus entry: an ingest folder's train split, a JSONL file, or text lines. */
const corpusTexts = async (root: string, entry: string): Promise<string[]> => {
  const path = resolve(root, entry)
  const st = await stat(path).catch(() => undefined)
  if (st === undefined)
    throw new StageInputError(
      `${entry}: no such file or folder\n   Check \`train_vocab.corpus\`: its paths are relative to the project root.`,
    )
  if (st.isDirectory()) {
    const train = join(entry, "train.jsonl")
    if (
      !(await access(resolve(root, train)).then(
        () => true,
        () => false,
      ))
    )
      throw new StageInputError(
        `${entry}: the folder has no train.jsonl\n   A corpus folder is an ingest stage's out folder; name a .jsonl or text file otherwise.`,
      )
    return (await readRows(root, train)).map((r) => r.text)
  }
  if (extname(entry).toLowerCase() === ".jsonl") return (await readRows(root, entry)).map((r) => r.text)
  return (await readFile(path, "utf8")).split("\n").filter((l) => l.trim() !== "")
}

/** The tokenizer: loaded from `vocab`, or trained on the corpus. */
const makeTokenizer = async (
  root: string,
  o: TokenizeOptions,
): Promise<{ tokenizer: BertTokenizer; vocab: Record<string, unknown> }> => {
  const basic: BasicOptions = o.lowercase ? UNCASED : CASED
  if (o.vocab !== undefined) {
    const loaded = await Effect.runPromise(Effect.either(loadTokenizer(resolve(root, o.vocab), basic)))
    if (Either.isLeft(loaded)) {
      const e = loaded.left
      throw dataError({
        place: {
          file: o.vocab,
          ...(e.line === undefined ? {} : { line: e.line }),
          ...(e.column === undefined ? {} : { column: e.column }),
        },
        problem: e.problem,
        hint: e.hint,
      })
    }
    return { tokenizer: loaded.right, vocab: { source: o.vocab, size: loaded.right.vocab.size } }
  }
  const t = o.trainVocab!
  const texts: string[] = []
  for (const entry of t.corpus) for (const text of await corpusTexts(root, entry)) texts.push(text)
  if (texts.length === 0)
    throw new StageInputError(
      `train_vocab: the corpus has no texts\n   Add texts to ${t.corpus.join(", ")}, or name other files in \`train_vocab.corpus\`.`,
    )
  const started = Date.now()
  const tokenizer = trainBertTokenizer(texts, {
    vocabSize: t.vocabSize,
    minFrequency: t.minFrequency,
    ...(t.limitAlphabet === undefined ? {} : { limitAlphabet: t.limitAlphabet }),
    basic,
  })
  const seconds = (Date.now() - started) / 1000
  process.stdout.write(
    `trained a vocabulary of ${tokenizer.vocab.size} tokens on ${texts.length} texts in ${seconds.toFixed(1)}s\n`,
  )
  return {
    tokenizer,
    // no timing here: stats.json must be the same bytes on a rerun
    vocab: { source: "trained", corpus: t.corpus, texts: texts.length, size: tokenizer.vocab.size },
  }
}

/** Statistics of one split. */
export interface SplitStats {
  readonly rows: number
  /** tokens per example, [CLS] and [SEP] included, before truncation */
  readonly tokens_mean: number
  readonly tokens_median: number
  readonly tokens_p95: number
  readonly tokens_max: number
  readonly truncated_rows: number
  readonly truncated_fraction: number
  /** unknown tokens per text token (before truncation) */
  readonly unk_rate: number
  /** padding per cell of the ids array */
  readonly padding_fraction: number
}

const round = (x: number, digits = 4) => Number(x.toFixed(digits))

/** The q-quantile (nearest rank) of sorted values. */
const quantile = (sorted: Int32Array, q: number): number =>
  sorted.length === 0
    ? 0
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

/** Encodes one split's rows into the artifact's arrays, and its statistics. */
export const encodeSplit = (
  tokenizer: BertTokenizer,
  rows: ReadonlyArray<{ readonly text: string; readonly label: string | undefined }>,
  o: Pick<TokenizeOptions, "maxLength" | "truncation" | "padding">,
  labelIds: ReadonlyMap<string, number> | null,
  tooLong: (row: number, tokens: number) => never,
  progress: (done: number) => void = () => {},
): { arrays: SplitArrays; stats: SplitStats } => {
  const { specials } = tokenizer.config
  const id = (t: string) => tokenizer.vocab.id(t)!
  const ids = { cls: id(specials.cls), sep: id(specials.sep), pad: id(specials.pad) }
  const unk = id(specials.unk)
  const full = new Int32Array(rows.length)
  const seqs: number[][] = []
  let unknown = 0
  let textTokens = 0
  let truncated = 0
  for (const [r, row] of rows.entries()) {
    const pieces = tokenizer.textIds(row.text)
    for (const p of pieces) if (p === unk) unknown++
    textTokens += pieces.length
    full[r] = pieces.length + 2
    if (!o.truncation && pieces.length + 2 > o.maxLength) tooLong(r, pieces.length + 2)
    const seq = assemble(pieces, undefined, ids, { maxLength: o.maxLength, truncation: o.truncation })
    if (seq.truncated > 0) truncated++
    seqs.push(seq.ids)
    if ((r + 1) % 500 === 0) progress(r + 1)
  }
  progress(rows.length)
  const cols = o.padding === "max_length" ? o.maxLength : seqs.reduce((m, s) => Math.max(m, s.length), 0)
  const size = tokenizer.vocab.size
  const out =
    idsDtype(size) === "uint16" ? new Uint16Array(rows.length * cols) : new Int32Array(rows.length * cols)
  out.fill(ids.pad)
  const lengths = new Int32Array(rows.length)
  let real = 0
  for (const [r, s] of seqs.entries()) {
    out.set(s, r * cols)
    lengths[r] = s.length
    real += s.length
  }
  const labels =
    labelIds === null
      ? null
      : Int32Array.from(rows, (row) => (row.label === undefined ? -1 : (labelIds.get(row.label) ?? -1)))
  const sorted = Int32Array.from(full).sort()
  const n = rows.length
  return {
    arrays: { rows: n, cols, ids: out, lengths, labels },
    stats: {
      rows: n,
      tokens_mean: n === 0 ? 0 : round(sorted.reduce((a, b) => a + b, 0) / n, 2),
      tokens_median: quantile(sorted, 0.5),
      tokens_p95: quantile(sorted, 0.95),
      tokens_max: n === 0 ? 0 : sorted[n - 1]!,
      truncated_rows: truncated,
      truncated_fraction: n === 0 ? 0 : round(truncated / n),
      unk_rate: textTokens === 0 ? 0 : round(unknown / textTokens, 6),
      padding_fraction: n * cols === 0 ? 0 : round(1 - real / (n * cols)),
    },
  }
}

/** Runs a tokenize stage: loads or trains the vocabulary, encodes every split into its out folder. */
export const run: StageImplementation = async (ctx) => {
  const o = tokenizeOptions(ctx.args)
  const out = ctx.outs[ctx.outs.length - 1]!
  const dataDir = resolve(ctx.root, o.data)
  if (
    !(await stat(dataDir).then(
      (s) => s.isDirectory(),
      () => false,
    ))
  )
    throw new StageInputError(
      `${o.data}: no such folder\n   \`data\` is an ingest stage's out folder, such as \${stages.ingest.outs[0]}.`,
    )
  const splits: Array<{ name: string; file: string; rows: DataRow[] }> = []
  for (const name of SPLITS) {
    const file = `${o.data}/${name}.jsonl`
    if (
      !(await access(resolve(ctx.root, file)).then(
        () => true,
        () => false,
      ))
    )
      throw new StageInputError(
        `${o.data}: the folder has no ${name}.jsonl\n   \`data\` is an ingest stage's out folder, such as \${stages.ingest.outs[0]}.`,
      )
    splits.push({ name, file, rows: await readRows(ctx.root, file) })
  }
  let labels: string[] | null = null
  const labelsFile = join(dataDir, "labels.json")
  if (
    await access(labelsFile).then(
      () => true,
      () => false,
    )
  ) {
    const listed = (JSON.parse(await readFile(labelsFile, "utf8")) as { labels?: unknown }).labels
    if (Array.isArray(listed) && listed.length > 0) labels = listed.map(String)
  } else {
    const seen = new Set<string>()
    for (const s of splits) for (const r of s.rows) if (r.label !== undefined) seen.add(r.label)
    if (seen.size > 0) labels = [...seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  }
  const labelIds = labels === null ? null : new Map(labels.map((l, i) => [l, i]))
  for (const s of splits)
    for (const r of s.rows)
      if (labelIds !== null && (r.label === undefined || !labelIds.has(r.label)))
        throw dataError({
          place: { file: s.file, line: r.line },
          problem:
            r.label === undefined
              ? "the row has no label"
              : `label ${JSON.stringify(r.label)} is not in labels.json`,
          hint: "`data` should be an ingest stage's out folder; rerun that stage.",
        })

  const { tokenizer, vocab } = await makeTokenizer(ctx.root, o)
  await rm(out, { recursive: true, force: true })
  await mkdir(out, { recursive: true })
  const total = splits.reduce((n, s) => n + s.rows.length, 0)
  let before = 0
  const entries: Record<string, SplitTokens> = {}
  const stats: Record<string, SplitStats> = {}
  for (const s of splits) {
    const { arrays, stats: st } = encodeSplit(
      tokenizer,
      s.rows,
      o,
      labelIds,
      (r, tokens) => {
        throw dataError({
          place: { file: s.file, line: s.rows[r]!.line },
          problem: `the text has ${tokens} tokens, more than max_length (${o.maxLength})`,
          hint: "Set `truncation: true` to cut long texts, or raise `max_length`.",
        })
      },
      (done) => ctx.progress({ step: before + done, total, split: s.name }),
    )
    before += s.rows.length
    entries[s.name] = await writeSplit(out, s.name, arrays)
    stats[s.name] = st
  }
  const { specials } = tokenizer.config
  const id = (t: string) => tokenizer.vocab.id(t)!
  const manifest: TokensManifest = {
    format: TOKENS_FORMAT,
    dtype: idsDtype(tokenizer.vocab.size),
    byte_order: "little",
    vocab_size: tokenizer.vocab.size,
    max_length: o.maxLength,
    padding: o.padding,
    tokenizer: "tokenizer.json",
    special_ids: {
      pad: id(specials.pad),
      unk: id(specials.unk),
      cls: id(specials.cls),
      sep: id(specials.sep),
    },
    labels,
    splits: entries,
  }
  await writeFile(join(out, "tokenizer.json"), formatTokenizerJson(tokenizer))
  await writeFile(join(out, "tokens.json"), `${JSON.stringify(manifest, null, 2)}\n`)
  await writeFile(
    join(out, "stats.json"),
    `${JSON.stringify({ vocab, max_length: o.maxLength, dtype: manifest.dtype, splits: stats }, null, 2)}\n`,
  )
  const train = stats.train!
  process.stdout.write(
    `tokenized ${total} rows with ${tokenizer.vocab.size} tokens: train ${train.tokens_mean} tokens per example on average, ` +
      `${(train.truncated_fraction * 100).toFixed(1)}% truncated, unknown ${(train.unk_rate * 100).toFixed(2)}%\n`,
  )
}
