// WordPiece training on tiny corpora whose merges can be followed by hand (the comments do), as Hugging
// Face's WordPieceTrainer makes them: the most frequent adjacent pair first, ties to the smaller pair of
// ids, ids given to specials, then the alphabet and the ## variants by code point, then merges in order.
import { readFileSync } from "node:fs"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import {
  formatTokenizerJson,
  parseTokenizerJson,
  trainBertTokenizer,
  trainWordPiece,
  WordCounter,
} from "../src/tokenizer/index.js"

const SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
const counts = (entries: Record<string, number>): Map<string, number> => new Map(Object.entries(entries))

describe("WordCounter", () => {
  it("counts BERT's basic tokens", () => {
    const c = new WordCounter()
    c.add("Hello, hello! 中文")
    c.add("HÉLLO")
    expect([...c.counts()]).toEqual([
      ["hello", 3],
      [",", 1],
      ["!", 1],
      ["中", 1],
      ["文", 1],
    ])
  })
})

describe("trainWordPiece", () => {
  // hello ×2 = h ##e ##l ##l ##o, help = h ##e ##l ##p, world = w ##o ##r ##l ##d.
  // Ids: specials 0–4, alphabet d e h l o p r w = 5–12, ##d ##e ##l ##o ##p ##r = 13–18.
  const corpus = counts({ hello: 2, help: 1, world: 1 })
  const base = [...SPECIALS, "d", "e", "h", "l", "o", "p", "r", "w", "##d", "##e", "##l", "##o", "##p", "##r"]

  it("merges the most frequent pair first, ties to the smaller ids", () => {
    expect(trainWordPiece(corpus, { vocabSize: 100 })).toEqual([
      ...base,
      "he", // h+##e 3 = ##e+##l 3: (7, 14) < (14, 15)
      "hel", // he+##l 3
      "##lo", // ##l+##o 2 = hel+##l 2: (15, 16) < (20, 15)
      "hello", // hel+##lo 2
      "wo", // all 1 from here: (12, 16) is the smallest pair
      "##ld", // (15, 13)
      "##rld", // (18, 24)
      "help", // (20, 17)
      "world", // (23, 25)
    ])
  })

  it("stops at vocabSize", () => {
    expect(trainWordPiece(corpus, { vocabSize: 21 })).toEqual([...base, "he", "hel"])
  })

  it("stops when the best pair is rarer than minFrequency", () => {
    expect(trainWordPiece(corpus, { vocabSize: 100, minFrequency: 3 })).toEqual([...base, "he", "hel"])
  })

  it("reproduces Hugging Face's BPE trainer test with the ## prefix", () => {
    // tokenizers/src/models/bpe/trainer.rs `test_train`: BPE merges r+e, a+re, i+s there. With ## the
    // pairs a+##r, ##r+##e, i+##s tie at 2, and a+##r has the smallest ids.
    const hf = counts({
      roses: 1,
      are: 2,
      red: 1,
      voilets: 1,
      blue: 1,
      BERT: 1,
      is: 2,
      big: 1,
      and: 1,
      so: 1,
    })
    hf.set("GPT-2", 1)
    const alphabet = [..."-2BEGPRTabdegilnorstuv"]
    const continuing = [..."-2EPRTdegilnorstu"].map((c) => `##${c}`)
    expect(trainWordPiece(hf, { vocabSize: 30000, minFrequency: 2, specialTokens: [] })).toEqual([
      ...alphabet,
      ...continuing,
      "ar",
      "is",
      "are",
    ])
  })

  it("limits the alphabet to the most frequent characters, rarer ties by code point", () => {
    // a 2, b 2, c 1, d 1: d goes; the word "d" is then empty.
    const tokens = trainWordPiece(counts({ ab: 2, c: 1, d: 1 }), {
      vocabSize: 100,
      limitAlphabet: 3,
      specialTokens: [],
    })
    expect(tokens).toEqual(["a", "b", "c", "##b", "ab"])
  })

  it("adds an initial alphabet", () => {
    const tokens = trainWordPiece(counts({ ab: 2 }), {
      vocabSize: 100,
      initialAlphabet: ["z"],
      specialTokens: ["[UNK]"],
    })
    expect(tokens).toEqual(["[UNK]", "a", "b", "z", "##b", "ab"])
  })

  it("makes the same merges as recounting every pair each round", () => {
    // The trainer updates pair counts incrementally through a lazy priority queue; this slow reference
    // recounts everything before each merge. Random small corpora over a tiny alphabet make many ties.
    const prefix = "##"
    const reference = (corpus: Map<string, number>, vocabSize: number): string[] => {
      const tokens = trainWordPiece(corpus, { vocabSize: 0 }) // specials, alphabet, ## variants
      const ids = new Map(tokens.map((t, i) => [t, i]))
      const words = [...corpus.keys()].sort()
      const syms = words.map((w) => [...w].map((c, i) => ids.get(i === 0 ? c : prefix + c)!))
      while (tokens.length < vocabSize) {
        const pairs = new Map<number, number>()
        syms.forEach((s, w) => {
          for (let i = 0; i + 1 < s.length; i++) {
            const k = s[i]! * 1000 + s[i + 1]!
            pairs.set(k, (pairs.get(k) ?? 0) + corpus.get(words[w]!)!)
          }
        })
        let best = -1
        for (const [k, n] of pairs)
          if (best === -1 || n > pairs.get(best)! || (n === pairs.get(best) && k < best)) best = k
        if (best === -1) break
        const [a, b] = [Math.floor(best / 1000), best % 1000]
        const merged = tokens[a]! + tokens[b]!.replace(/^##/, "")
        if (!ids.has(merged)) ids.set(merged, tokens.push(merged) - 1)
        const id = ids.get(merged)!
        for (const s of syms)
          for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) s.splice(i, 2, id)
      }
      return tokens
    }
    let seed = 7
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return Math.floor((seed / 2 ** 31) * n)
    }
    for (let trial = 0; trial < 50; trial++) {
      const corpus = new Map<string, number>()
      const alphabet = "abcde".slice(0, 2 + random(4))
      for (let i = random(30); i >= 0; i--) {
        let w = ""
        for (let j = random(8); j >= 0; j--) w += alphabet[random(alphabet.length)]
        corpus.set(w, (corpus.get(w) ?? 0) + 1 + random(5))
      }
      const vocabSize = 10 + random(60)
      expect(trainWordPiece(corpus, { vocabSize })).toEqual(reference(corpus, vocabSize))
    }
  })

  it("does not depend on the order the words were counted in", () => {
    const reversed = new Map([...corpus].reverse())
    expect(trainWordPiece(reversed, { vocabSize: 100 })).toEqual(trainWordPiece(corpus, { vocabSize: 100 }))
  })
})

describe("trainBertTokenizer", () => {
  const texts = ["Hello hello help world!", "Héllo, WORLD.", "中文 hello"]
  const bert = trainBertTokenizer(texts, { vocabSize: 40 })

  it("learns the merges of the basic tokens and splits unseen words into them", () => {
    // hello ×4, world ×2, help: he, hel, ##lo, hello, wo, ##ld, ##rld, world, help (as above).
    expect(bert.vocab.tokens().slice(5)).toEqual([
      ..."!,.dehloprw中文",
      ...["##d", "##e", "##l", "##o", "##p", "##r"],
      ...["he", "hel", "##lo", "hello", "wo", "##ld", "##rld", "world", "help"],
    ])
    expect(bert.tokenize("Helo held wold hold helps 中!")).toEqual([
      ...["hel", "##o", "hel", "##d", "wo", "##ld", "h", "##o", "##ld"],
      ...["[UNK]", "中", "!"],
    ])
  })

  it("writes a tokenizer.json that reads back as the same tokenizer", () => {
    const json = formatTokenizerJson(bert)
    expect(json).toBe(readFileSync("test/fixtures/tokenizer/trained-tokenizer.json", "utf8"))
    const again = Either.getOrThrow(parseTokenizerJson(json, "trained-tokenizer.json"))
    expect(again.vocab.tokens()).toEqual(bert.vocab.tokens())
    expect(again.encode("hello world, 中文")).toEqual(bert.encode("hello world, 中文"))
  })
})
