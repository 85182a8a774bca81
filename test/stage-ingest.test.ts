// The pure parts of the `ingest` stage kind: CSV records and their places, UTF-8 checking, located
// messages, the format readers, text samples and chunks, and the hash split.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import ingestSchema from "../schemas/stages/ingest.schema.json" with { type: "json" }
import { ingestOptions } from "../stages/ingest.js"
import { parseCsv } from "../stages/ingest-csv.js"
import { decodeFile, ENCODINGS, firstInvalidUtf8, textDecoder } from "../stages/ingest-decode.js"
import { BadRows, excerpt, renderProblem } from "../stages/ingest-errors.js"
import { readFolders, readText } from "../stages/ingest-folders.js"
import { readCsv, readJsonl } from "../stages/ingest-formats.js"
import type { ReadOptions } from "../stages/ingest-rows.js"
import { normalizeKey, prepare, splitOf, unitHash } from "../stages/ingest-split.js"
import { chunk, samples, sentences } from "../stages/ingest-text.js"

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

const options = (o: Partial<ReadOptions> = {}): ReadOptions => ({
  textFields: ["text"],
  labelField: "label",
  labels: undefined,
  encoding: "utf-8",
  delimiter: ",",
  sampleBy: "line",
  maxRowChars: 1_000_000,
  ...o,
})

/** The message a reader's first bad row fails with. */
const failure = (read: () => unknown): string => {
  try {
    read()
  } catch (e) {
    return (e as Error).message
  }
  throw new Error("it did not fail")
}

describe("parseCsv", () => {
  it("reads quoted fields with delimiters, doubled quotes and line breaks, and knows where each field starts", () => {
    const text = '\ufefftext,label\r\n"a, b",x\r\n\r\n"say ""hi""\nthere",y\nlast,z,'
    expect([...parseCsv(text, ",", 1000)]).toEqual([
      {
        kind: "record",
        fields: ["text", "label"],
        starts: [
          { line: 1, column: 2 },
          { line: 1, column: 7 },
        ],
        line: 1,
        endLine: 1,
        length: 10,
      },
      {
        kind: "record",
        fields: ["a, b", "x"],
        starts: [
          { line: 2, column: 1 },
          { line: 2, column: 8 },
        ],
        line: 2,
        endLine: 2,
        length: 8,
      },
      {
        kind: "record",
        fields: ['say "hi"\nthere', "y"],
        starts: [
          { line: 4, column: 1 },
          { line: 5, column: 8 },
        ],
        line: 4,
        endLine: 5,
        length: 20,
      },
      {
        kind: "record",
        fields: ["last", "z", ""],
        starts: [
          { line: 6, column: 1 },
          { line: 6, column: 6 },
          { line: 6, column: 8 },
        ],
        line: 6,
        endLine: 6,
        length: 7,
      },
    ])
  })

  it("reports text after a closing quote and goes on at the next line", () => {
    const items = [...parseCsv('"ab"c,1\nok,2\n', ",", 1000)]
    expect(items).toEqual([
      {
        kind: "problem",
        line: 1,
        column: 5,
        fatal: false,
        problem: 'unexpected "c" after the closing quote of field 1',
        hint: 'Inside a quoted field, write a quote as two quotes ("")',
      },
      {
        kind: "record",
        fields: ["ok", "2"],
        starts: [
          { line: 2, column: 1 },
          { line: 2, column: 4 },
        ],
        line: 2,
        endLine: 2,
        length: 4,
      },
    ])
  })

  it("stops at a quote that is never closed, or that runs past the limit", () => {
    const never = [...parseCsv('a,b\nx,"open\ny,z\n', ",", 1000)]
    expect(never.at(-1)).toMatchObject({
      kind: "problem",
      line: 2,
      column: 3,
      fatal: true,
      problem: "the quoted field that starts here is never closed",
    })
    const long = [...parseCsv(`a,"${"x".repeat(50)}"\n`, ",", 20)]
    expect(long).toMatchObject([
      {
        kind: "problem",
        line: 1,
        column: 3,
        fatal: true,
        problem: "the quoted field that starts here is still open after 20 characters",
      },
    ])
  })

  it("splits on another delimiter", () => {
    expect([...parseCsv("a\tb,c\n", "\t", 100)].map((r) => (r.kind === "record" ? r.fields : r))).toEqual([
      ["a", "b,c"],
    ])
  })
})

describe("UTF-8", () => {
  it("finds the first byte that does not start a valid sequence", () => {
    expect(firstInvalidUtf8(bytes("aé中😀"))).toBe(-1)
    expect(firstInvalidUtf8(Uint8Array.of(0x61, 0xe9, 0x62))).toBe(1) // Latin-1 é
    expect(firstInvalidUtf8(Uint8Array.of(0xc0, 0x80))).toBe(0) // overlong NUL
    expect(firstInvalidUtf8(Uint8Array.of(0x61, 0xed, 0xa0, 0x80))).toBe(1) // a surrogate
    expect(firstInvalidUtf8(Uint8Array.of(0xf4, 0x90, 0x80, 0x80))).toBe(0) // above U+10FFFF
    expect(firstInvalidUtf8(Uint8Array.of(0x61, 0xe4, 0xb8))).toBe(1) // cut short at the end
  })

  it("offers in the schema exactly the encodings the decoder knows", () => {
    expect(ingestSchema.properties.encoding.enum).toEqual([...ENCODINGS])
    // every label is one TextDecoder knows; the single-byte and CJK ones read ASCII as ASCII
    for (const e of ENCODINGS) if (!e.startsWith("utf-16")) expect(textDecoder(e)(bytes("abc"))).toBe("abc")
    expect(textDecoder("utf-16le")(Uint8Array.of(0x61, 0, 0x2d, 0x4e))).toBe("a中")
  })

  it("agrees with TextDecoder's fatal mode on random bytes", () => {
    const fatal = new TextDecoder("utf-8", { fatal: true })
    let seed = 42
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed
    }
    // bytes biased towards the lead and continuation bytes where the edge cases are
    const pool = [
      0x41, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff,
    ]
    for (let i = 0; i < 20_000; i++) {
      const buf = Uint8Array.from({ length: 1 + (next() % 6) }, () => pool[next() % pool.length]!)
      let valid = true
      try {
        fatal.decode(buf)
      } catch {
        valid = false
      }
      expect(firstInvalidUtf8(buf) === -1, `bytes ${[...buf].map((b) => b.toString(16)).join(" ")}`).toBe(
        valid,
      )
    }
  })

  it("decodes a file and reports each bad line with the column of its first bad byte", () => {
    const file = Uint8Array.of(
      ...[0xef, 0xbb, 0xbf],
      ...bytes("ok\n中a"),
      0xe9,
      ...bytes("b\nfine\n"),
      0xff,
      ...bytes("\n"),
    )
    const d = decodeFile(file, "utf-8")
    expect(d.text).toBe("ok\n中a\ufffdb\nfine\n\ufffd\n")
    expect([...d.badLines]).toEqual([
      [2, { column: 3, byte: 0xe9 }],
      [4, { column: 1, byte: 0xff }],
    ])
    // Node's own TextDecoder reads 0x93 0x94 in windows-1252 as C1 controls
    expect(decodeFile(Uint8Array.of(0x93, 0x63, 0x61, 0x66, 0xe9, 0x94), "windows-1252")).toEqual({
      text: "“café”",
      badLines: new Map(),
    })
  })
})

describe("located messages", () => {
  it("underline the place, counting wide characters as two columns", () => {
    expect(
      renderProblem({
        place: { file: "data/r.jsonl", line: 5, column: 9 },
        problem: "invalid JSON: Expected ',' or '}' after property value",
        hint: "Fix the line.",
        source: '{"text":"好" "label": 1}',
      }),
    ).toBe(
      [
        "data/r.jsonl:5:9: invalid JSON: Expected ',' or '}' after property value",
        '    5 | {"text":"好" "label": 1}',
        "      |         ~",
        "   Fix the line.",
      ].join("\n"),
    )
    expect(excerpt(2, "好好x", 3)).toEqual(["    2 | 好好x", "      |     ~"])
  })

  it("cut a long line to a window around the column", () => {
    const line = `${"a".repeat(150)}X${"b".repeat(150)}`
    const [text, marker] = excerpt(1, line, 151)
    expect(text).toBe(`    1 | …${"a".repeat(20)}X${"b".repeat(79)}…`)
    expect(marker).toBe(`      |  ${" ".repeat(20)}~`)
  })

  it("leave out the marker without a column", () => {
    expect(renderProblem({ place: { file: "d.csv", line: 3 }, problem: "p", hint: "h", source: "x,y" })).toBe(
      "d.csv:3: p\n    3 | x,y\n   h",
    )
  })
})

describe("readJsonl", () => {
  it("reads text and label, skipping blank lines", () => {
    const rows = readJsonl(
      "r.jsonl",
      bytes('{"text": " 好 ", "label": "pos"}\n\n{"text": "b", "label": 1}\r\n'),
      options(),
      new BadRows("fail"),
    )
    expect(rows).toEqual([
      { text: "好", label: "pos", at: { file: "r.jsonl", line: 1 } },
      { text: "b", label: "1", at: { file: "r.jsonl", line: 3 } },
    ])
  })

  it("fails at a broken line with its place and column", () => {
    const message = failure(() =>
      readJsonl(
        "r.jsonl",
        bytes('{"text": "a", "label": "x"}\n{"text": "好" "label": "x"}\n'),
        options(),
        new BadRows("fail"),
      ),
    )
    expect(message).toBe(
      [
        "r.jsonl:2:14: invalid JSON: Expected ',' or '}' after property value",
        '    2 | {"text": "好" "label": "x"}',
        "      |               ~",
        "   Fix the line, or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).",
      ].join("\n"),
    )
  })

  it("names the fields a row has when the text or label field is missing", () => {
    expect(
      failure(() =>
        readJsonl("r.jsonl", bytes('{"review": "a", "label": "x"}\n'), options(), new BadRows("fail")),
      ),
    ).toBe(
      [
        'r.jsonl:1: no "text" field (the line has "review", "label")',
        '    1 | {"review": "a", "label": "x"}',
        "   Set `text_field` to the field that holds the text, or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).",
      ].join("\n"),
    )
    expect(
      failure(() => readJsonl("r.jsonl", bytes('{"text": "a"}\n'), options(), new BadRows("fail"))),
    ).toBe(
      [
        'r.jsonl:1: no "label" field: the row has no label',
        '    1 | {"text": "a"}',
        "   Give the row a label, or set `label_field` to the field that holds labels, or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).",
      ].join("\n"),
    )
  })

  it("under skip, counts every kind of bad row and lists the first ones", () => {
    const bad = new BadRows("skip")
    const file = Uint8Array.of(
      ...bytes(
        '{"text": "ok", "label": "a"}\n[1, 2]\n{"text": 3, "label": "a"}\n{"text": "x", "label": ""}\n',
      ),
      ...bytes('{"text": "caf'),
      0xe9,
      ...bytes('", "label": "a"}\n{"text": "pos", "label": "postive"}\n'),
    )
    const rows = readJsonl("r.jsonl", file, options({ labels: ["negative", "positive"] }), bad)
    expect(rows).toEqual([])
    expect(bad.skipped).toBe(6)
    expect(bad.examples).toEqual([
      { at: "r.jsonl:1", problem: 'label "a" is not one of "negative", "positive"' },
      { at: "r.jsonl:2", problem: "the line is a list, not a JSON object" },
      { at: "r.jsonl:3", problem: '"text" is a number, not a string' },
      { at: "r.jsonl:4", problem: '"label" is empty: the row has no label' },
      { at: "r.jsonl:5:14", problem: "not valid UTF-8 (byte 0xE9)" },
      { at: "r.jsonl:6", problem: 'label "postive" is not one of "negative", "positive"' },
    ])
  })

  it("refuses a line longer than max_row_chars", () => {
    const bad = new BadRows("skip")
    readJsonl(
      "r.jsonl",
      bytes(`{"text": "${"x".repeat(40)}"}\n`),
      options({ maxRowChars: 20, labelField: undefined }),
      bad,
    )
    expect(bad.examples).toEqual([
      { at: "r.jsonl:1", problem: "the line is 52 characters long, more than max_row_chars (20)" },
    ])
  })
})

describe("readCsv", () => {
  it("maps the header's columns, joining several text columns", () => {
    const rows = readCsv(
      "r.csv",
      bytes('title,body,label\nHi,"a, b",pos\n'),
      options({ textFields: ["title", "body"] }),
      new BadRows("fail"),
    )
    expect(rows).toEqual([{ text: "Hi\na, b", label: "pos", at: { file: "r.csv", line: 2 } }])
  })

  it("fails at a ragged row, under its first extra field", () => {
    expect(
      failure(() =>
        readCsv(
          "r.csv",
          bytes("text,label\n很好,positive\n还行,好,positive\n"),
          options(),
          new BadRows("fail"),
        ),
      ),
    ).toBe(
      [
        "r.csv:3:6: row has 3 fields, the header has 2",
        "    3 | 还行,好,positive",
        "      |         ~~~~~~~~",
        '   Quote a field that contains "," ("a, b"), fix the row, or set `on_bad_row: skip` to leave such rows out (metrics.json counts them).',
      ].join("\n"),
    )
  })

  it("fails when the header lacks a named column, whatever on_bad_row says", () => {
    expect(failure(() => readCsv("r.csv", bytes("text,lable\na,b\n"), options(), new BadRows("skip")))).toBe(
      [
        'r.csv:1: the header has no column "label" (it has "text", "lable")',
        "    1 | text,lable",
        '   Did you mean "lable"? Set `label_field` to one of the header\'s columns.',
      ].join("\n"),
    )
  })

  it("skips rows with an empty label or bad UTF-8 under skip", () => {
    const bad = new BadRows("skip")
    const file = Uint8Array.of(...bytes("text,label\na,\nb,x\nc"), 0xe9, ...bytes(",x\n"))
    expect(readCsv("r.csv", file, options(), bad)).toEqual([
      { text: "b", label: "x", at: { file: "r.csv", line: 3 } },
    ])
    expect(bad.examples).toEqual([
      { at: "r.csv:2:3", problem: 'the "label" field is empty: the row has no label' },
      { at: "r.csv:4:2", problem: "not valid UTF-8 (byte 0xE9)" },
    ])
  })
})

describe("plain text", () => {
  it("cuts text into lines, paragraphs or one document", () => {
    const text = "one\n  two  \n\n\nthree\nfour\n"
    expect(samples(text, "line").map((s) => [s.text, s.line])).toEqual([
      ["one", 1],
      ["two", 2],
      ["three", 5],
      ["four", 6],
    ])
    expect(samples(text, "paragraph")).toEqual([
      { text: "one\ntwo", line: 1, endLine: 2 },
      { text: "three\nfour", line: 5, endLine: 6 },
    ])
    expect(samples(text, "document")).toEqual([
      { text: "one\n  two  \n\n\nthree\nfour", line: 1, endLine: 6 },
    ])
  })

  it("reads rows of a label, with places", () => {
    expect(
      readText(
        "d/pos/a.txt",
        bytes("好\n\n坏\n"),
        options({ sampleBy: "paragraph" }),
        new BadRows("fail"),
        "pos",
      ),
    ).toEqual([
      { text: "好", label: "pos", at: { file: "d/pos/a.txt", line: 1 } },
      { text: "坏", label: "pos", at: { file: "d/pos/a.txt", line: 3 } },
    ])
  })

  it("reads a folder per label, each file one example, and reports a file outside the label folders", async () => {
    const dir = await mkdtemp(join(tmpdir(), "folders-"))
    try {
      for (const [path, text] of Object.entries({
        "neg/1.txt": "太差了\n",
        "pos/a.txt": "很好\n",
        "pos/sub/b.txt": " 不错 ",
        "pos/.hidden.txt": "x",
        "README.md": "about",
      })) {
        await mkdir(join(dir, path, ".."), { recursive: true })
        await writeFile(join(dir, path), text)
      }
      const bad = new BadRows("skip")
      const done: number[] = []
      const rows = await readFolders(dir, "reviews", options({ sampleBy: "document" }), bad, (n) =>
        done.push(n),
      )
      expect(rows).toEqual([
        { text: "太差了", label: "neg", at: { file: "reviews/neg/1.txt" } },
        { text: "很好", label: "pos", at: { file: "reviews/pos/a.txt" } },
        { text: "不错", label: "pos", at: { file: "reviews/pos/sub/b.txt" } },
      ])
      expect(bad.examples).toEqual([
        { at: "reviews/README.md", problem: "the file is not in a label folder" },
      ])
      expect(done).toEqual([2, 3, 4])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it("finds sentence ends, CJK full stops included", () => {
    expect(sentences('He said "Go." Then left! 好。很好！ok')).toEqual([
      'He said "Go." ',
      "Then left! ",
      "好。",
      "很好！",
      "ok",
    ])
  })

  it("chunks long text by whole sentences, and a long sentence at spaces", () => {
    expect(chunk("Aa aa. Bb bb. Cc cc.", 14)).toEqual(["Aa aa. Bb bb.", "Cc cc."])
    expect(chunk("short", 14)).toEqual(["short"])
    expect(chunk("one two three four five six", 10)).toEqual(["one two", "three four", "five six"])
    expect(chunk("好好好好好好好好好好好好好好好好好好好好", 16)).toEqual([
      "好好好好好好好好好好好好好好好好",
      "好好好好",
    ])
  })
})

describe("prepare", () => {
  const row = (text: string, label?: string, line = 1) => ({ text, label, at: { file: "f", line } })
  const base = {
    chunkChars: undefined,
    minChars: 1,
    dedupe: true,
    maxRows: undefined,
    split: { train: 0.8, validation: 0.1, test: 0.1 },
    seed: 0,
  }

  it("hashes the normalised text into [0, 1) with a seed", () => {
    expect(normalizeKey(" a\u0301  b\n c ")).toBe("\u00e1 b c")
    expect(unitHash("split", 0, "hello")).toBe(unitHash("split", 0, "hello"))
    expect(unitHash("split", 0, "hello")).not.toBe(unitHash("split", 1, "hello"))
    expect(unitHash("split", 0, "hello")).not.toBe(unitHash("sample", 0, "hello"))
    expect(splitOf(0.79, base.split)).toBe("train")
    expect(splitOf(0.8, base.split)).toBe("validation")
    expect(splitOf(0.9, base.split)).toBe("test")
  })

  it("puts a row in the same split whatever other rows there are", () => {
    const texts = Array.from({ length: 200 }, (_, i) => `review number ${i}`)
    const where = (rows: ReadonlyArray<string>) => {
      const p = prepare(
        rows.map((t) => row(t)),
        base,
      )
      return new Map(
        (["train", "validation", "test"] as const).flatMap((s) =>
          p.splits[s].map((r) => [r.text, s] as const),
        ),
      )
    }
    const all = where(texts)
    const half = where(texts.filter((_, i) => i % 2 === 0))
    for (const [text, split] of half) expect(all.get(text)).toBe(split)
    expect([...all.values()].filter((s) => s === "train").length).toBe(163)
  })

  it("drops short texts and duplicates (first copy kept), counting conflicting labels", () => {
    const p = prepare(
      [
        row("good", "pos", 1),
        row("x", "neg", 2),
        row(" good ", "neg", 3),
        row("good", "pos", 4),
        row("fine", "pos", 5),
      ],
      { ...base, minChars: 2, split: { train: 1, validation: 0, test: 0 } },
    )
    expect(p.splits.train.map((r) => r.at.line)).toEqual([1, 5])
    expect(p).toMatchObject({ rows: 5, tooShort: 1, duplicates: 2, conflictingLabels: 1, overMaxRows: 0 })
    expect(p.conflictExamples).toEqual([{ at: "f:3", first: "f:1", labels: ["pos", "neg"] }])
  })

  it("caps rows by an independent hash, keeping the order they were read in", () => {
    const rows = Array.from({ length: 100 }, (_, i) => row(`text ${i}`, undefined, i + 1))
    const p = prepare(rows, { ...base, maxRows: 10 })
    const kept = [...p.splits.train, ...p.splits.validation, ...p.splits.test]
      .map((r) => r.at.line!)
      .sort((a, b) => a - b)
    expect(kept.length).toBe(10)
    expect(p.overMaxRows).toBe(90)
    const more = prepare(rows, { ...base, maxRows: 20 })
    const keptMore = new Set(
      [...more.splits.train, ...more.splits.validation, ...more.splits.test].map((r) => r.at.line),
    )
    for (const line of kept) expect(keptMore.has(line)).toBe(true)
  })

  it("chunks before filtering", () => {
    const p = prepare([row("Aa aa. Bb bb. Cc cc.")], {
      ...base,
      chunkChars: 16,
      split: { train: 1, validation: 0, test: 0 },
    })
    expect(p.splits.train.map((r) => r.text)).toEqual(["Aa aa. Bb bb.", "Cc cc."])
    expect(p.rows).toBe(2)
  })
})

describe("ingestOptions", () => {
  const message = (args: Record<string, unknown>) => failure(() => ingestOptions(args))

  it("fills what the schema leaves open", () => {
    const o = ingestOptions({
      source: "d.txt",
      format: "folders",
      text_field: "text",
      split: { train: 0.9, test: 0.1 },
    })
    expect(o).toMatchObject({
      sampleBy: "document",
      split: { train: 0.9, validation: 0, test: 0.1 },
      onBadRow: "fail",
    })
  })

  it("refuses what the schema cannot", () => {
    expect(message({ source: "a.csv", dataset: "sotu" })).toBe(
      'with: both "source" and "dataset" are set\n   A stage reads either files (`source`) or built-in datasets (`dataset`): remove one of them.',
    )
    expect(message({ source: "a.csv", split: { train: 0.8, validation: 0.1 } })).toBe(
      "with: the split fractions add up to 0.9, not 1\n   Make train, validation and test add up to 1 (a split left out counts as 0).",
    )
    expect(message({ dataset: ["spam-assassin", "sotu"] })).toBe(
      "with: the datasets spam-assassin, sotu mix labeled and unlabeled rows\n   Ingest labeled and unlabeled datasets in separate stages.",
    )
    expect(message({ dataset: "sotu", label_field: "x" })).toBe(
      'with: "label_field" is set, but a built-in dataset is read as it is\n   Remove "label_field": it applies to files read from `source`.',
    )
  })
})
