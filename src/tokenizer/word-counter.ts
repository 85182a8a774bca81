/**
 * Counting the basic tokens (words) of a corpus, the input of vocabulary training. Natural text repeats
 * itself, so the counter tallies raw whitespace-separated runs first and basic-tokenizes each distinct
 * run once when the counts are asked for: cleaning, NFC, lowercasing and punctuation splitting then run
 * per distinct run instead of per occurrence.
 */
import { type BasicOptions, BasicTokenizer, UNCASED } from "./basic.js"

/** A string -> count tally: one hash lookup per string seen before (a Map<string, number> needs two). */
class Tally {
  private readonly slots = new Map<string, number>()
  private counts = new Float64Array(1024)

  add(key: string, n: number): void {
    const slot = this.slots.get(key)
    if (slot !== undefined) {
      this.counts[slot]! += n
      return
    }
    const next = this.slots.size
    if (next === this.counts.length) {
      const grown = new Float64Array(next * 2)
      grown.set(this.counts)
      this.counts = grown
    }
    this.counts[next] = n
    this.slots.set(key, next)
  }

  entries(): Map<string, number> {
    const out = new Map<string, number>()
    for (const [key, slot] of this.slots) out.set(key, this.counts[slot]!)
    return out
  }
}

/** Counts the basic tokens of a corpus, text by text. */
export class WordCounter {
  private readonly basic: BasicTokenizer
  private readonly chunks = new Tally()

  constructor(options: BasicOptions = UNCASED) {
    this.basic = new BasicTokenizer(options)
  }

  /** Counts the words of one text. */
  add(text: string): void {
    this.basic.forEachChunk(text, (chunk) => this.chunks.add(chunk, 1))
  }

  /** Each distinct word and how often it occurred, in order of first occurrence. */
  counts(): Map<string, number> {
    const words = new Tally()
    for (const [chunk, n] of this.chunks.entries()) this.basic.forEachToken(chunk, (w) => words.add(w, n))
    return words.entries()
  }
}
