/**
 * `pipeline dag`: the stage graph as text, Mermaid or Graphviz dot.
 */
import { Effect } from "effect"
import { UsageError } from "../errors.js"
import { toDot, toMermaid, toText } from "../graph.js"
import type { CommandSpec } from "./context.js"
import { locationOptions, setOption, str } from "./options.js"
import { withProject } from "./project.js"

const formats = { text: toText, mermaid: toMermaid, dot: toDot } as const

export const dag: CommandSpec = {
  summary: "print the stage graph (text, mermaid or dot)",
  usage: "[PIPELINE] [--format text|mermaid|dot]",
  options: {
    format: { type: "string", placeholder: "FORMAT", help: "text (default), mermaid or dot" },
    ...setOption,
    ...locationOptions,
  },
  run: (values, positionals, ctx) =>
    withProject(values, positionals, ctx, ({ pipeline }) =>
      Effect.gen(function* () {
        const format = str(values, "format") ?? "text"
        if (!(format in formats))
          return yield* new UsageError({
            message: `unknown --format "${format}"`,
            hint: "Use one of: text, mermaid, dot.",
          })
        ctx.stdout.write(`${formats[format as keyof typeof formats](pipeline)}\n`)
        return 0
      }),
    ),
}
