// biome-ignore-all lint/suspicious/noTemplateCurlyInString: pipeline strings use ${...} references
import { describe, expect, it } from "vitest"
import { interpolate, type Reference, type Resolution, referencesIn, valueText } from "../src/interpolate.js"
import { quoteFor, ShellContext, shellQuote } from "../src/shell-quote.js"

const params: Readonly<Record<string, unknown>> = {
  lr: 0.001,
  name: "it's here",
  layers: [64, 32],
  train: { epochs: 3 },
  flag: true,
}
const outs: Readonly<Record<string, ReadonlyArray<string>>> = { prep: ["data/clean.csv", "data/my file.csv"] }

const resolve = (ref: Reference): Resolution => {
  if (ref._tag === "Param")
    return Object.hasOwn(params, ref.name)
      ? { ok: true, value: params[ref.name] }
      : { ok: false, message: `unknown param "${ref.name}"`, hint: "" }
  const out = outs[ref.stage]?.[ref.index]
  return out === undefined ? { ok: false, message: `no out ${ref.raw}`, hint: "" } : { ok: true, value: out }
}

const text = (s: string) => interpolate(s, resolve, "text")
const typed = (s: string) => interpolate(s, resolve, "typed")
const shell = (s: string) => interpolate(s, resolve, "shell")

describe("references", () => {
  it("finds params and stage outs, and nothing else", () => {
    expect(referencesIn("a ${params.train.epochs} ${stages.prep.v1.outs[12]} ${HOME} $${params.x}")).toEqual([
      { _tag: "Param", name: "train.epochs", raw: "${params.train.epochs}" },
      { _tag: "StageOut", stage: "prep.v1", index: 12, raw: "${stages.prep.v1.outs[12]}" },
    ])
  })
})

describe("interpolate", () => {
  it("writes values as text inside longer strings", () => {
    expect(text("--lr ${params.lr} --layers ${params.layers} ${params.train} ${params.flag}")).toEqual({
      value: '--lr 0.001 --layers [64,32] {"epochs":3} true',
      errors: [],
    })
  })

  it("keeps the type of a string that is exactly one reference, in typed mode only", () => {
    expect(typed("${params.lr}").value).toBe(0.001)
    expect(typed("${params.train}").value).toEqual({ epochs: 3 })
    expect(typed(" ${params.lr}").value).toBe(" 0.001")
    expect(text("${params.lr}").value).toBe("0.001")
  })

  it("leaves the shell's ${...} alone and turns $${ into ${", () => {
    expect(text("${HOME} ${1:-x} $${params.lr} $${HOME} ${X:-${params.lr}}").value).toBe(
      "${HOME} ${1:-x} ${params.lr} ${HOME} ${X:-0.001}",
    )
  })

  it("resolves stage outs", () => {
    expect(text("cat ${stages.prep.outs[0]}").value).toBe("cat data/clean.csv")
  })

  it("reports unresolved and malformed references with their occurrence", () => {
    const result = text("${params.nope} ${params.} ${stages.prep.deps[0]} ${params.nope} ${params.lr")
    expect(result.value).toBe("${params.nope} ${params.} ${stages.prep.deps[0]} ${params.nope} ${params.lr")
    expect(result.errors.map((e) => [e.raw, e.occurrence, e.message])).toEqual([
      ["${params.nope}", 0, 'unknown param "nope"'],
      ["${params.}", 0, 'malformed reference "${params.}"'],
      ["${stages.prep.deps[0]}", 0, 'malformed reference "${stages.prep.deps[0]}"'],
      ["${params.nope}", 1, 'unknown param "nope"'],
      ["${params.lr", 0, 'malformed reference "${params.lr"'],
    ])
  })

  it("quotes values for the shell quoting open where they stand", () => {
    expect(shell("echo ${params.lr} ${params.name}").value).toBe(`echo 0.001 'it'\\''s here'`)
    expect(shell('echo "${params.name} $$" ${stages.prep.outs[1]}').value).toBe(
      `echo "it's here $$" 'data/my file.csv'`,
    )
    expect(shell("echo '${params.name}'").value).toBe(`echo 'it'\\''s here'`)
    expect(shell('echo "$(cat ${stages.prep.outs[1]})"').value).toBe(`echo "$(cat 'data/my file.csv')"`)
  })

  it("renders null and numbers as text", () => {
    expect(valueText(null)).toBe("null")
    expect(valueText(1e-7)).toBe("1e-7")
  })
})

describe("shellQuote", () => {
  it("leaves safe words alone and single-quotes the rest", () => {
    expect(shellQuote("data/clean-1.csv")).toBe("data/clean-1.csv")
    expect(shellQuote("")).toBe("''")
    expect(shellQuote("x; rm -rf ~")).toBe("'x; rm -rf ~'")
    expect(shellQuote("it's")).toBe(`'it'\\''s'`)
    expect(shellQuote("$HOME `id`")).toBe("'$HOME `id`'")
  })
})

describe("ShellContext", () => {
  const quotingAfter = (text: string) => {
    const context = new ShellContext()
    context.feed(text)
    return context.quoting
  }

  it("follows quotes, escapes and command substitutions", () => {
    expect(quotingAfter("echo ")).toBe("none")
    expect(quotingAfter('echo "a ')).toBe("double")
    expect(quotingAfter("echo 'a \" ")).toBe("single")
    expect(quotingAfter('echo \\" ')).toBe("none")
    expect(quotingAfter('echo "a \\" ')).toBe("double")
    expect(quotingAfter('echo "$(cat ')).toBe("none")
    expect(quotingAfter('echo "$(cat x) ')).toBe("double")
    expect(quotingAfter('echo "`cat ')).toBe("none")
    expect(quotingAfter("echo 'a' \"b\" ")).toBe("none")
  })

  it("escapes for each quoting", () => {
    expect(quoteFor(`a"b$c\`d\\e`, "double")).toBe(`a\\"b\\$c\\\`d\\\\e`)
    expect(quoteFor("a'b", "single")).toBe(`a'\\''b`)
    expect(quoteFor("a b", "none")).toBe("'a b'")
  })
})
