/**
 * The registry of built-in stage kinds. A kind's definition is light (no heavy imports): the spec loader
 * reads it to validate `with:`, derive the stage's outs and deps, and put the kind's version into the
 * fingerprint. The implementation lives in a separate module that only the stage runner loads.
 */
import wordCountSchema from "../schemas/stages/word-count.schema.json" with { type: "json" }

/** What the loader and the fingerprint need to know of a built-in stage kind. */
export interface KindDefinition {
  readonly kind: string
  /** bump when the kind's results change: it is part of every fingerprint of a stage of this kind */
  readonly version: string
  readonly description: string
  /** JSON Schema of the stage's `with:` */
  readonly schema: object
  /** the outs it writes, project-relative, given its `with:` and its out folder */
  readonly outs: (args: Readonly<Record<string, unknown>>, outDir: string) => ReadonlyArray<string>
  /** the paths it reads, as written in `with:` */
  readonly deps: (args: Readonly<Record<string, unknown>>) => ReadonlyArray<string>
}

/** The default folder of a built-in stage's outs, unless `with.out_dir` says otherwise. */
export const defaultOutDir = (pipelineName: string, stageName: string): string =>
  `outputs/${pipelineName}/${stageName}`

const wordCount: KindDefinition = {
  kind: "word-count",
  version: "1",
  description: "Counts lines, words and the most frequent words of a text file or of every file in a folder.",
  schema: wordCountSchema,
  outs: (_args, outDir) => [`${outDir}/counts.json`],
  deps: (args) => [String(args.input)],
}

/** Every built-in kind, by name. */
export const kinds: ReadonlyMap<string, KindDefinition> = new Map([[wordCount.kind, wordCount]])
