/**
 * `with:` of an evaluate stage, typed, with what its schema cannot express checked (a `primary` that is not
 * one of `models`). Light, so the pipeline loader runs the same check before anything runs (the kind's
 * `check` in stages/registry.ts).
 */
import { StageInputError } from "./api.js"

/** `with:` of an evaluate stage, typed. */
export interface EvaluateOptions {
  readonly data: string
  /** name -> model folder, in the order listed */
  readonly models: ReadonlyArray<{ readonly name: string; readonly path: string }>
  /** the model whose scores go at the top of metrics.json: `primary`, else the last one listed */
  readonly primary: string
  readonly split: string
  readonly batchSize: number
  readonly baseline: boolean
  readonly examples: number
}

const trim = (p: string) => p.replace(/\/+$/, "")

/** Reads `with:` (already checked against the schema, defaults filled in). */
export const evaluateOptions = (args: Readonly<Record<string, unknown>>): EvaluateOptions => {
  const models = Object.entries((args.models ?? {}) as Record<string, unknown>).map(([name, path]) => ({
    name,
    path: trim(String(path)),
  }))
  const primary = typeof args.primary === "string" ? args.primary : models[models.length - 1]?.name
  if (primary === undefined)
    throw new StageInputError(
      `with: \`models\` is empty\n   Name at least one model to evaluate: \`models: {tuned: \${stages.train.outs[0]}}\`.`,
    )
  if (!models.some((m) => m.name === primary))
    throw new StageInputError(
      `with: primary "${primary}" is not one of the models (${models.map((m) => m.name).join(", ")})\n   Set \`primary\` to the name of a model under \`models\`, or leave it out to use the last one listed.`,
    )
  return {
    data: trim(String(args.data)),
    models,
    primary,
    split: typeof args.split === "string" ? args.split : "test",
    batchSize: typeof args.batch_size === "number" ? args.batch_size : 32,
    baseline: args.baseline !== false,
    examples: typeof args.examples === "number" ? args.examples : 10,
  }
}
