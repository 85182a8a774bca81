/**
 * The JSON Schemas are product: editors use them through `# yaml-language-server: $schema=...`. They must
 * compile under ajv's strict mode, describe every property, and accept the pipelines we ship.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import { compiled, pipelineSchema, validate } from "../src/schema.js"
import { kinds } from "../stages/registry.js"

type Json = { readonly [key: string]: unknown }
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v)

/** JSON-pointer-ish paths of every subschema that should explain itself but has no description. */
const undescribed = (root: Json): ReadonlyArray<string> => {
  const missing: string[] = []
  const resolves = (s: Json): boolean => {
    if (typeof s.description === "string" && s.description.length > 0) return true
    if (typeof s.$ref !== "string") return false
    const target = s.$ref
      .slice(2)
      .split("/")
      .reduce<unknown>((node, seg) => (isObject(node) ? node[seg] : undefined), root)
    return isObject(target) && resolves(target)
  }
  const must = (s: unknown, path: string) => {
    if (isObject(s) && !resolves(s)) missing.push(path)
  }
  const walk = (s: unknown, path: string) => {
    if (!isObject(s)) return
    for (const [key, value] of Object.entries(isObject(s.properties) ? s.properties : {}))
      must(value, `${path}/properties/${key}`)
    for (const [key, value] of Object.entries(isObject(s.definitions) ? s.definitions : {}))
      must(value, `${path}/definitions/${key}`)
    for (const key of ["items", "additionalProperties", "propertyNames"]) must(s[key], `${path}/${key}`)
    for (const [key, value] of Object.entries(s)) {
      if (Array.isArray(value)) for (const [i, v] of value.entries()) walk(v, `${path}/${key}/${i}`)
      else walk(value, `${path}/${key}`)
    }
  }
  must(root, "#")
  walk(root, "#")
  return missing
}

const schemas: ReadonlyArray<readonly [string, object]> = [
  ["pipeline", pipelineSchema],
  ...[...kinds.values()].map((k) => [k.kind, k.schema] as const),
]

describe.each(schemas)("the %s schema", (_name, schema) => {
  it("compiles under ajv's strict mode", async () => {
    await expect(compiled(schema)).resolves.toBeTypeOf("function")
  })

  it("describes every property, recursively", () => {
    expect(undescribed(schema as Json)).toEqual([])
  })
})

describe("the pipeline schema", () => {
  const errorsOf = (data: unknown) =>
    Effect.runPromise(validate(pipelineSchema, data)).then((v) =>
      v.errors.map((e) => `${e.instancePath} ${e.keyword}`),
    )

  it("finds the description checker's mistakes", () => {
    expect(
      undescribed({ properties: { a: { type: "string" } }, definitions: { b: { description: "b" } } }),
    ).toEqual(["#", "#/properties/a"])
  })

  it("lists the built-in kinds as examples of `uses`", () => {
    const stage = (pipelineSchema as Json).definitions as Json
    const uses = ((stage.stage as Json).properties as Json).uses as Json
    expect(uses.examples).toEqual([...kinds.keys()])
  })

  it("accepts a pipeline that uses every key", async () => {
    const full = parse(`
name: demo
description: every key
params: {lr: 0.1, train: {epochs: 3, layers: [1, 2]}}
params_file: params.yaml
stages:
  prepare:
    description: d
    cmd: [echo a, echo b]
    deps: [data/raw.csv]
    outs: [data/clean.csv]
    params: [lr, train.epochs]
    needs: []
    env: {A: x, B: 1, C: true}
    resources: {cpu: 2, gpu: 0}
    retries: 1
    retry_delay: 1h30m
    timeout: 0.5
    shell_quote: false
  count:
    uses: word-count
    with: {input: data/clean.csv}
`)
    expect(await errorsOf(full)).toEqual([])
  })

  it("refuses what it should", async () => {
    expect(await errorsOf({ stages: {} })).toEqual(["/stages minProperties"])
    expect(await errorsOf({ stages: { a: { cmd: "x", timeout: "10 min" } } })).toEqual([
      "/stages/a/timeout pattern",
    ])
    expect(await errorsOf({ stages: { a: { cmd: "x", timeout: -1 } } })).toEqual([
      "/stages/a/timeout minimum",
    ])
    expect(await errorsOf({ stages: { a: { cmd: [] } } })).toEqual(["/stages/a/cmd minItems"])
    expect(await errorsOf({ params: { "a.b": 1 }, stages: { a: { cmd: "x" } } })).toEqual([
      "/params pattern",
      "/params propertyNames",
    ])
  })

  it("fills defaults into a copy, never into the value validated", async () => {
    const data = { stages: { a: { cmd: "x", resources: {} } } }
    const { value } = await Effect.runPromise(validate(pipelineSchema, data))
    expect(data.stages.a.resources).toEqual({})
    expect((value as typeof data).stages.a.resources).toEqual({ cpu: 1, gpu: 0 })
  })
})

describe("the shipped pipelines", () => {
  const dir = join(import.meta.dirname, "..", "pipelines")
  const files = readdirSync(dir).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"))
  it.each(files.length > 0 ? files : ["(none yet)"])("%s matches the schema", async (file) => {
    if (file === "(none yet)") return
    const data = parse(readFileSync(join(dir, file), "utf8"))
    const { errors } = await Effect.runPromise(validate(pipelineSchema, data))
    expect(errors.map((e) => `${e.instancePath} ${e.message}`)).toEqual([])
  })
})
