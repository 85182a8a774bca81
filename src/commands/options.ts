/**
 * Options shared by several commands, and the typed readers of parsed option values.
 */
import { Effect } from "effect"
import { UsageError } from "../errors.js"
import type { OptionSpec, Values } from "./context.js"

/** `--root`, `--store`: where the project and its store are. */
export const locationOptions: Readonly<Record<string, OptionSpec>> = {
  root: {
    type: "string",
    placeholder: "DIR",
    help: "project root (default: found from the pipeline file; env PIPELINE_ROOT)",
  },
  store: {
    type: "string",
    placeholder: "DIR",
    help: "artifact store (default: <root>/.pipeline/store; env PIPELINE_STORE)",
  },
}

/** `--set k=v`, repeatable. */
export const setOption: Readonly<Record<string, OptionSpec>> = {
  set: {
    type: "string",
    multiple: true,
    placeholder: "KEY=VALUE",
    help: "override a param (dotted key; value read as YAML), repeatable",
  },
}

export const jsonOption: Readonly<Record<string, OptionSpec>> = {
  json: { type: "boolean", help: "print one JSON object on stdout (human output goes to stderr)" },
}

/** A string option's value. */
export const str = (v: Values, k: string): string | undefined => {
  const x = v[k]
  return typeof x === "string" ? x : undefined
}

/** A repeatable string option's values. */
export const strs = (v: Values, k: string): ReadonlyArray<string> => {
  const x = v[k]
  return Array.isArray(x)
    ? x.filter((s): s is string => typeof s === "string")
    : typeof x === "string"
      ? [x]
      : []
}

/** A positive integer option. */
export const positiveInt = (
  v: Values,
  k: string,
  dflt: number,
  min = 1,
): Effect.Effect<number, UsageError> => {
  const x = str(v, k)
  if (x === undefined) return Effect.succeed(dflt)
  const n = Number(x)
  return Number.isInteger(n) && n >= min
    ? Effect.succeed(n)
    : Effect.fail(
        new UsageError({
          message: `--${k} must be an integer >= ${min}, got "${x}"`,
          hint: `Pass a whole number, e.g. --${k} ${Math.max(min, 2)}.`,
        }),
      )
}
