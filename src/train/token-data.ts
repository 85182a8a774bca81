/**
 * A tokenize stage's out folder as the training stages read it: the manifest, the tokenizer the ids are
 * of, its special ids (for masking), and splits on demand.
 */
import { join } from "node:path"
import * as Effect from "effect/Effect"
import { StageInputError } from "../../stages/api.js"
import {
  readManifest,
  readSplit,
  type SplitArrays,
  type TokensManifest,
} from "../../stages/tokenize-format.js"
import { type BertTokenizer, loadTokenizer } from "../tokenizer/index.js"
import type { MaskingVocab } from "./masking.js"

/** A tokenized dataset. */
export interface TokenData {
  readonly dir: string
  readonly manifest: TokensManifest
  readonly tokenizer: BertTokenizer
  /** what masked-LM masking needs; the mask id is undefined when the vocabulary has no [MASK] */
  readonly masking: MaskingVocab | undefined
  readonly split: (name: string) => Promise<SplitArrays>
}

/** Open the token artifact in `dir` (a tokenize stage's out folder); `what` names it in errors (`with.data`). */
export const openTokenData = async (dir: string, what: string): Promise<TokenData> => {
  const manifest = await readManifest(dir).catch((e: unknown) => {
    throw new StageInputError(
      `${what}: ${dir} is not a tokenize stage's output (${e instanceof Error ? e.message : String(e)})\n   Point it at a tokenize stage's out folder, e.g. \${stages.tokenize.outs[0]}.`,
    )
  })
  const tokenizer = await Effect.runPromise(loadTokenizer(join(dir, manifest.tokenizer))).catch(
    (e: unknown) => {
      throw new StageInputError(
        `${what}: cannot read the tokenizer of ${dir}: ${e instanceof Error ? e.message : String(e)}\n   Rerun the tokenize stage that wrote it (pipeline run --force-stage <name>).`,
      )
    },
  )
  const maskId = tokenizer.vocab.id(tokenizer.config.specials.mask)
  const s = manifest.special_ids
  const masking =
    maskId === undefined
      ? undefined
      : { maskId, vocabSize: manifest.vocab_size, specialIds: [s.pad, s.unk, s.cls, s.sep, maskId] }
  const cache = new Map<string, Promise<SplitArrays>>()
  const split = (name: string): Promise<SplitArrays> => {
    let p = cache.get(name)
    if (p === undefined) {
      if (manifest.splits[name] === undefined)
        return Promise.reject(
          new StageInputError(
            `${what}: ${dir} has no "${name}" split (it has ${Object.keys(manifest.splits).join(", ") || "none"})\n   Check the ingest stage's split settings.`,
          ),
        )
      p = readSplit(dir, manifest, name)
      cache.set(name, p)
    }
    return p
  }
  return { dir, manifest, tokenizer, masking, split }
}
