/**
 * Plain text into samples: one per line, per paragraph (blocks separated by blank lines) or per document
 * (Hugging Face `datasets`' `sample_by`), and samples longer than `chunk_chars` cut into chunks of whole
 * sentences, so that an address delivered as one 40,000-character line becomes rows a model can read.
 */

/** How plain text is cut into samples. */
export type SampleBy = "line" | "paragraph" | "document"

/** A sample and the line it starts on. */
export interface TextSample {
  readonly text: string
  readonly line: number
  /** the lines it spans, first and last (for tying it to lines that failed UTF-8) */
  readonly endLine: number
}

/** The samples of a text, blank ones left out; each sample's text is trimmed. */
export const samples = (text: string, by: SampleBy): TextSample[] => {
  const lines = text.split("\n")
  if (lines.at(-1) === "") lines.pop()
  const out: TextSample[] = []
  if (by === "document") {
    const trimmed = text.trim()
    if (trimmed !== "") out.push({ text: trimmed, line: 1, endLine: Math.max(1, lines.length) })
    return out
  }
  if (by === "line") {
    for (const [i, raw] of lines.entries()) {
      const t = raw.trim()
      if (t !== "") out.push({ text: t, line: i + 1, endLine: i + 1 })
    }
    return out
  }
  let block: string[] = []
  let first = 0
  const flush = (end: number) => {
    if (block.length > 0) out.push({ text: block.join("\n"), line: first + 1, endLine: end })
    block = []
  }
  for (const [i, raw] of lines.entries()) {
    const t = raw.trim()
    if (t === "") {
      flush(i)
      continue
    }
    if (block.length === 0) first = i
    block.push(t)
  }
  flush(lines.length)
  return out
}

// A sentence ends at . ! ? … (and their fullwidth forms), with closing quotes or brackets after it, before
// whitespace or the end; CJK full stops need no space after them.
const SENTENCE_END = /[.!?…]+["'”’)\]]*(?=\s|$)|[。！？]+[」』”’）]*/gu

/** The sentences of a text, whitespace after each kept with it, so that joining them gives the text back. */
export const sentences = (text: string): string[] => {
  const out: string[] = []
  let last = 0
  for (const m of text.matchAll(SENTENCE_END)) {
    let end = m.index + m[0].length
    while (end < text.length && /\s/.test(text[end]!)) end++
    out.push(text.slice(last, end))
    last = end
  }
  if (last < text.length) out.push(text.slice(last))
  return out
}

/** Cuts a piece longer than `max` code points at the last whitespace that keeps a part within `max`. */
const hardCut = (piece: string, max: number): string[] => {
  const cps = [...piece]
  const out: string[] = []
  let start = 0
  while (cps.length - start > max) {
    let cut = start + max
    let k = cut
    while (k > start && !/\s/u.test(cps[k]!)) k--
    if (k > start) cut = k
    out.push(cps.slice(start, cut).join("").trim())
    start = cut
    while (start < cps.length && /\s/u.test(cps[start]!)) start++
  }
  out.push(cps.slice(start).join("").trim())
  return out.filter((p) => p !== "")
}

/**
 * `text` cut into chunks of at most `max` characters (code points), made of whole sentences where a
 * sentence fits, each trimmed. A text that fits is returned as it is.
 */
export const chunk = (text: string, max: number): string[] => {
  const length = (s: string) => (s.length <= max ? s.length : [...s].length)
  if (length(text) <= max) return [text]
  const out: string[] = []
  let current = ""
  for (const sentence of sentences(text)) {
    if (length(current + sentence) <= max || current === "") {
      current += sentence
      if (length(current) > max) {
        const parts = hardCut(current, max)
        current = parts.pop() ?? ""
        out.push(...parts)
      }
      continue
    }
    out.push(current.trim())
    current = sentence
    if (length(current) > max) {
      const parts = hardCut(current, max)
      current = parts.pop() ?? ""
      out.push(...parts)
    }
  }
  if (current.trim() !== "") out.push(current.trim())
  return out.filter((c) => c !== "")
}
