/**
 * The one ajv instance. Every JSON Schema (the pipeline's, each built-in kind's `with:` and each kind
 * module's) is compiled here, once, on first use: ajv is imported lazily because the CLI's start-up time matters and most
 * commands (`--version`, `runs`, ...) never validate anything.
 */
import type { Ajv, ErrorObject, ValidateFunction } from "ajv"
import { Effect } from "effect"
import pipelineSchemaJson from "../schemas/pipeline.schema.json" with { type: "json" }
import { AJV_OPTIONS } from "./ajv-options.js"
import precompiled from "./generated/validators.js"

/** The JSON Schema of pipeline YAML (schemas/pipeline.schema.json). */
export const pipelineSchema: object = pipelineSchemaJson

/** The keys a stage may have, from the schema. */
export const stageKeys: ReadonlyArray<string> = Object.keys(pipelineSchemaJson.definitions.stage.properties)

/** The outcome of validating a value: ajv's errors and a copy of the value with schema defaults filled in. */
export interface Validation {
  readonly errors: ReadonlyArray<ErrorObject>
  readonly value: unknown
}

let ajv: Promise<Ajv> | undefined
const cache = new WeakMap<object, Promise<ValidateFunction>>()

const instance = (): Promise<Ajv> => {
  // A bundled dynamic import of a CommonJS module yields only `default`; unbundled Node yields named exports.
  ajv ??= import("ajv").then(
    (m: { Ajv?: typeof Ajv; default?: { Ajv?: typeof Ajv } }) =>
      new (m.Ajv ?? m.default?.Ajv ?? (m.default as unknown as typeof Ajv))(AJV_OPTIONS),
  )
  return ajv
}

/**
 * The compiled validator of a schema object; compiled once per schema. The schemas we ship are compiled at
 * build time (ajv's standalone code, `src/generated/validators.js`): compiling them at run time cost every
 * command ~150 ms of start-up. Others are compiled here on first use.
 */
export const compiled = (schema: object): Promise<ValidateFunction> => {
  const id = (schema as { $id?: unknown }).$id
  const built =
    typeof id === "string" ? (precompiled as Record<string, ValidateFunction | undefined>)[id] : undefined
  if (built !== undefined) return Promise.resolve(built)
  let validator = cache.get(schema)
  if (validator === undefined) {
    validator = instance().then((a) => a.compile(schema))
    cache.set(schema, validator)
  }
  return validator
}

const userCache = new WeakMap<object, Promise<ValidateFunction>>()

/**
 * The compiled validator of a schema that does not ship with pipeline (a kind module's `with:` schema),
 * compiled at run time, once per schema object. Its `$id` is left out, so it can neither stand for nor clash
 * with another schema. Rejects with ajv's message when the schema is not valid.
 */
export const compileUserSchema = (schema: object): Promise<ValidateFunction> => {
  let validator = userCache.get(schema)
  if (validator === undefined) {
    const { $id: _id, ...rest } = schema as Record<string, unknown>
    validator = instance().then((a) => a.compile(rest))
    userCache.set(schema, validator)
  }
  return validator
}

const run = (validator: ValidateFunction, data: unknown): Validation => {
  const value = structuredClone(data)
  const ok = validator(value)
  return { errors: ok ? [] : [...(validator.errors ?? [])], value }
}

/** Validates `data` against `schema` without touching `data` (defaults go into the returned copy). */
export const validate = (schema: object, data: unknown): Effect.Effect<Validation> =>
  Effect.promise(() => compiled(schema)).pipe(Effect.map((validator) => run(validator, data)))

/**
 * Compiles `schemas` (ours) and `userSchemas` (kind modules', already known to compile) and hands back a
 * synchronous validator for them, for code that validates in the middle of plain functions (the stages'
 * `with:`, resolved stage by stage).
 */
export const validators = (
  schemas: ReadonlyArray<object>,
  userSchemas: ReadonlyArray<object> = [],
): Effect.Effect<(schema: object, data: unknown) => Validation> =>
  Effect.promise(() => Promise.all([...schemas.map(compiled), ...userSchemas.map(compileUserSchema)])).pipe(
    Effect.map((compiledSchemas) => {
      const bySchema = new Map([...schemas, ...userSchemas].map((s, i) => [s, compiledSchemas[i]!]))
      return (schema, data) => {
        const validator = bySchema.get(schema)
        if (validator === undefined) throw new Error("validators: schema was not compiled first")
        return run(validator, data)
      }
    }),
  )
