/**
 * The fast path of YAML parsing (`src/yaml-fast.ts`) against `yaml`, the reference: wherever it answers, `yaml`
 * parses the same text without an error and to the same data. Checked on chosen cases (each shape where the two
 * parsers were found to differ), on every YAML file of the project, on seeded random edits of those files, and
 * on random documents that `yaml` writes in each of its styles.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { parseDocument, stringify } from "yaml"
import { fastYaml } from "../src/yaml-fast.js"
import { repoRoot } from "./support/project.js"

/** What `yaml` reads, with the options `source-map.ts` parses pipeline files with. */
const reference = (text: string): { readonly value: unknown } | { readonly error: string } => {
  const doc = parseDocument(text, { uniqueKeys: true, resolveKnownTags: false, logLevel: "silent" })
  if (doc.errors.length > 0) return { error: doc.errors[0]?.code ?? "error" }
  try {
    return { value: doc.toJS() }
  } catch (e) {
    return { error: String(e) }
  }
}

/** How many texts the fast path answered for (the properties check that it answered for many). */
let answered = 0

/** The fast path declines, or agrees with `yaml`. */
const agrees = (text: string): boolean => {
  const fast = fastYaml(text)
  if (fast === undefined) return true
  answered++
  const ref = reference(text)
  if ("error" in ref)
    throw new Error(`the fast path accepted what yaml rejects (${ref.error}): ${JSON.stringify(text)}`)
  expect(fast.value, JSON.stringify(text)).toStrictEqual(ref.value)
  return true
}

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return e.name === "node_modules" || e.name.startsWith(".") ? [] : yamlFiles(path)
    return /\.ya?ml$/.test(e.name) ? [path] : []
  })
const files = [...yamlFiles(join(repoRoot, "pipelines")), ...yamlFiles(join(repoRoot, "test", "fixtures"))]
const texts = files.map((f) => readFileSync(f, "utf8"))

describe("the fast YAML path", () => {
  it("reads a plain pipeline as yaml does, numbers, booleans, nulls and `|` blocks included", () => {
    const text = [
      "name: demo",
      "params:",
      "  lr: 0.001",
      "  big: 1e400",
      "  octal: 0o17",
      "  hex: 0x1F",
      "  not_octal: 017",
      "  underscored: 1_000",
      "  flags: [true, False, ~, null, .inf, -.inf, .nan]",
      "  date: 2020-01-01",
      "  yes_is_text: yes",
      "stages:",
      "  train:",
      "    cmd: |",
      "      python train.py \\",
      "        --lr $" + "{params.lr}",
      "",
      "      echo done",
      "    note: >",
      "      folded",
      "      text",
      "",
      "        more indented",
      "      end",
      '    deps: [data.csv, "quoted, with comma"]',
      "    outs:",
      "      - model.bin # a comment",
      "    '1': one",
      "    __proto__: kept",
      "",
    ].join("\n")
    const fast = fastYaml(text)
    if (fast === undefined) throw new Error("the fast path declined a plain pipeline")
    expect(fast.value).toStrictEqual((reference(text) as { value: unknown }).value)
    expect((fast.value as { params: Record<string, unknown> }).params).toMatchObject({
      big: Infinity,
      octal: 15,
      hex: 31,
      not_octal: 17,
      underscored: "1_000",
      date: "2020-01-01",
      yes_is_text: "yes",
    })
  })

  it.each([
    ["a lone CR, which yaml does not take for a line break", "a: x\rb: y"],
    ["a tab in the indentation", "a:\n\t- 1"],
    ["a tab before top-level content", "\t<"],
    ["a byte-order mark", "\ufeffa: 1"],
    ["a byte-order mark inside", "a: 1\n\ufeffb: 2"],
    ["a line over 1,000 characters", `a: ${"x".repeat(1001)}`],
    ["a directive", "%YAML 1.1\n---\na: yes"],
    ["a document marker", "---\na: 1"],
    ["a document end marker", "...\n...: "],
    ["two documents", "a: 1\n---\nb: 2"],
    ["an anchor", "a: &x 1"],
    ["an alias", "a: &x 1\nb: *x"],
    ["an explicit tag", "a: !!float 3"],
    ["an explicit binary tag", "a: !!binary aGk="],
    ["a local tag", "a: !foo x"],
    ["an indentation indicator", "root: |1\n    \n"],
    ["keep chomping", '"root": |+\n    \n '],
    ["a plain scalar over two lines", "a: plain\n  multi\n\n  line"],
    ["a quoted scalar over two lines", 'a: "x\\\n\n  y"'],
    ["content after a closing quote", '"a": "x"y'],
    ["a key after a quoted entry", '- ", "  k: null'],
    ["a key after a flow collection", 'a:\n- []  "k": []\n'],
    [
      "a flow mapping over lines, with a `:` starting one",
      "{\n   root:'\n        #1-9\n  \n        :1e51e5'\n}\n",
    ],
    ["a flow list over two lines", "x: [a,\n  b]"],
    ["an empty key", ": stages  export:\n    cmd: x\n"],
    ["a null key", "~: a"],
    ["a complex key", "[a, b]: c"],
    ["a duplicate key", "a: 1\na: 2"],
    ["the same key written two ways", '1: a\n"1": b'],
    ["an empty file", ""],
    ["only comments", "# nothing\n"],
    ["a syntax error", "a: [1, 2"],
  ])("declines %s, which yaml then reads or rejects with its located error", (_what, text) => {
    expect(fastYaml(text)).toBeUndefined()
  })

  it("reads every example pipeline, and agrees with yaml on every YAML file of the project, with LF or CRLF", () => {
    expect(files.length).toBeGreaterThan(100)
    for (const [i, text] of texts.entries()) {
      const file = relative(repoRoot, files[i] ?? "")
      if (file.startsWith("pipelines/")) expect(fastYaml(text), file).toBeDefined()
      agrees(text)
      agrees(text.replace(/\r?\n/g, "\r\n")) // as written on Windows
    }
  })

  it("agrees with yaml on random edits of the project's YAML files", () => {
    const pieces = [
      ..." \n\t:-#&*!?|>'\"[]{},%@`~.0123456789eE+_xonNtTfF\\\r\u0001\ufeff",
      "---",
      "...",
      "<<",
      "  ",
      "\n  ",
      "- ",
      ": ",
      " #",
      "0o",
      "0x",
      ".inf",
      "null",
    ]
    const edit = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom("insert", "delete", "copy-line"),
      piece: fc.constantFrom(...pieces),
      length: fc.integer({ min: 1, max: 3 }),
    })
    answered = 0
    fc.assert(
      fc.property(
        fc.nat(texts.length - 1),
        fc.array(edit, { minLength: 1, maxLength: 4 }),
        (which, edits) => {
          let text = texts[which] ?? ""
          for (const e of edits) {
            const at = e.at % (text.length + 1)
            if (e.kind === "insert") text = text.slice(0, at) + e.piece + text.slice(at)
            else if (e.kind === "delete") text = text.slice(0, at) + text.slice(at + e.length)
            else {
              const lines = text.split("\n")
              lines.splice(at % lines.length, 0, lines[(at * 7) % lines.length] ?? "")
              text = lines.join("\n")
            }
          }
          return agrees(text)
        },
      ),
      { seed: 20261129, numRuns: 4000 },
    )
    expect(answered).toBeGreaterThan(900)
  })

  it("agrees with yaml on random documents yaml writes, in every string and collection style", () => {
    const text = fc.string({
      unit: fc.constantFrom(
        ..."ab z:#-'\"\\\n\t{}[],&*!|>%@`?~.09eE+_\u00e9\u2028\u0085",
        "\n\n",
        ": ",
        " #",
        "null",
        "0o7",
      ),
      maxLength: 12,
    })
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        text,
        fc.integer(),
        fc.double({ noNaN: false }),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie("node"), { maxLength: 4 }),
        fc.dictionary(text, tie("node"), { maxKeys: 4 }),
      ),
    })).node
    const options = fc.record({
      defaultStringType: fc.constantFrom(
        "PLAIN",
        "QUOTE_DOUBLE",
        "QUOTE_SINGLE",
        "BLOCK_FOLDED",
        "BLOCK_LITERAL",
      ) as fc.Arbitrary<"PLAIN">,
      collectionStyle: fc.constantFrom("any", "block", "flow") as fc.Arbitrary<"any">,
      lineWidth: fc.constantFrom(0, 10, 80),
      indent: fc.constantFrom(2, 4),
      indentSeq: fc.boolean(),
    })
    answered = 0
    fc.assert(
      fc.property(value, options, (root, opts) => agrees(stringify({ root }, opts))),
      { seed: 20261129, numRuns: 3000 },
    )
    expect(answered).toBeGreaterThan(2000)
  })
})
