// The `tokenize` stage kind's encoding into the token artifact, and the artifact's bytes on disk.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Either from "effect/Either"
import { afterEach, describe, expect, it } from "vitest"
import { tokenizerFromVocabTxt } from "../src/tokenizer/index.js"
import { encodeSplit, tokenizeOptions } from "../stages/tokenize.js"
import {
  idsDtype,
  readManifest,
  readSplit,
  TOKENS_FORMAT,
  type TokensManifest,
  writeSplit,
} from "../stages/tokenize-format.js"

// ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, 好 5, 很 6, 用 7, 差 8, good 9, ##s 10
const VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "很", "用", "差", "good", "##s"]
const tokenizer = Either.getOrThrow(tokenizerFromVocabTxt(`${VOCAB.join("\n")}\n`, "vocab.txt"))
const labelIds = new Map([
  ["negative", 0],
  ["positive", 1],
])
const never = (): never => {
  throw new Error("no row is too long here")
}

describe("encodeSplit", () => {
  const rows = [
    { text: "很好用", label: "positive" },
    { text: "Goods 差!", label: "negative" },
    { text: "好 好 好 好 好 好 好", label: "positive" },
  ]

  it("writes [CLS] ids [SEP] and padding, row-major, with lengths, labels and statistics", () => {
    const { arrays, stats } = encodeSplit(
      tokenizer,
      rows,
      { maxLength: 6, truncation: true, padding: "max_length" },
      labelIds,
      never,
    )
    expect(arrays.rows).toBe(3)
    expect(arrays.cols).toBe(6)
    expect(arrays.ids).toBeInstanceOf(Uint16Array)
    expect([...arrays.ids]).toEqual([
      ...[2, 6, 5, 7, 3, 0],
      // "goods" -> good ##s; "!" is not in the vocabulary
      ...[2, 9, 10, 8, 1, 3],
      // seven 好, truncated to four
      ...[2, 5, 5, 5, 5, 3],
    ])
    expect([...arrays.lengths]).toEqual([5, 6, 6])
    expect([...arrays.labels!]).toEqual([1, 0, 1])
    expect(stats).toEqual({
      rows: 3,
      tokens_mean: 6.67,
      tokens_median: 6,
      tokens_p95: 9,
      tokens_max: 9,
      truncated_rows: 1,
      truncated_fraction: 0.3333,
      unk_rate: 0.071429,
      padding_fraction: 0.0556,
    })
  })

  it("pads to the longest row with padding: longest, and leaves labels out of a corpus", () => {
    const { arrays } = encodeSplit(
      tokenizer,
      [
        { text: "好", label: undefined },
        { text: "很好", label: undefined },
      ],
      { maxLength: 128, truncation: true, padding: "longest" },
      null,
      never,
    )
    expect(arrays.cols).toBe(4)
    expect([...arrays.ids]).toEqual([2, 5, 3, 0, 2, 6, 5, 3])
    expect(arrays.labels).toBe(null)
  })

  it("calls tooLong for a row past max_length without truncation", () => {
    const tooLong = (row: number, tokens: number): never => {
      throw new Error(`row ${row}: ${tokens} tokens`)
    }
    expect(() =>
      encodeSplit(
        tokenizer,
        rows,
        { maxLength: 6, truncation: false, padding: "max_length" },
        labelIds,
        tooLong,
      ),
    ).toThrow("row 2: 9 tokens")
  })
})

describe("the token artifact", () => {
  let dir: string | undefined
  afterEach(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
  })

  it("uses uint16 ids up to 65,536 tokens, int32 beyond", () => {
    expect(idsDtype(8000)).toBe("uint16")
    expect(idsDtype(65536)).toBe("uint16")
    expect(idsDtype(65537)).toBe("int32")
  })

  it("is raw little-endian arrays that read back as written", async () => {
    dir = await mkdtemp(join(tmpdir(), "tokens-"))
    const arrays = {
      rows: 2,
      cols: 3,
      ids: Uint16Array.of(2, 300, 3, 2, 3, 0),
      lengths: Int32Array.of(3, 2),
      labels: Int32Array.of(1, 0),
    }
    const entry = await writeSplit(dir, "train", arrays)
    expect(entry).toEqual({
      rows: 2,
      cols: 3,
      ids: "train.ids.bin",
      lengths: "train.lengths.bin",
      labels: "train.labels.bin",
    })
    expect([...(await readFile(join(dir, "train.ids.bin")))]).toEqual([2, 0, 44, 1, 3, 0, 2, 0, 3, 0, 0, 0])
    expect([...(await readFile(join(dir, "train.lengths.bin")))]).toEqual([3, 0, 0, 0, 2, 0, 0, 0])
    const manifest: TokensManifest = {
      format: TOKENS_FORMAT,
      dtype: "uint16",
      byte_order: "little",
      vocab_size: 400,
      max_length: 3,
      padding: "max_length",
      tokenizer: "tokenizer.json",
      special_ids: { pad: 0, unk: 1, cls: 2, sep: 3 },
      labels: ["a", "b"],
      splits: { train: entry },
    }
    await writeFile(join(dir, "tokens.json"), JSON.stringify(manifest))
    const back = await readSplit(dir, await readManifest(dir), "train")
    expect(back).toEqual(arrays)
  })
})

describe("tokenizeOptions", () => {
  it("defaults the corpus to the data folder and refuses vocab with train_vocab", () => {
    expect(tokenizeOptions({ data: "out/ingest/", train_vocab: { vocab_size: 100 } }).trainVocab).toEqual({
      vocabSize: 100,
      minFrequency: 2,
      limitAlphabet: undefined,
      corpus: ["out/ingest"],
    })
    expect(() => tokenizeOptions({ data: "d", vocab: "v.txt", train_vocab: {} })).toThrow(
      'with: both "vocab" and "train_vocab" are set\n   Use a vocabulary file (`vocab`) or train one (`train_vocab`): remove one of them.',
    )
  })
})
