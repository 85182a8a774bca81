/**
 * From a data file's bytes to text. UTF-8 is checked, not assumed: a byte sequence that is not UTF-8 would
 * otherwise turn into U+FFFD silently and train the model on garbage. The whole file is checked at once
 * (`buffer.isUtf8`, native); only a file that fails is walked line by line to find each bad line and the
 * column of its first bad byte, so that the rows on those lines can be reported (or skipped) one by one.
 */
import { isUtf8 } from "node:buffer"

/** The encodings a data file may declare (`with.encoding`), by their WHATWG names. */
export const ENCODINGS = [
  "utf-8",
  "utf-16le",
  "utf-16be",
  "windows-1252",
  "iso-8859-1",
  "iso-8859-15",
  "windows-1251",
  "koi8-r",
  "gbk",
  "gb18030",
  "big5",
  "shift_jis",
  "euc-jp",
  "euc-kr",
] as const

/** Where a line is not UTF-8: the column its first bad byte would have, and that byte. */
export interface BadUtf8 {
  readonly column: number
  readonly byte: number
}

/** A decoded file. */
export interface Decoded {
  readonly text: string
  /** 1-based line -> its first invalid UTF-8 sequence; empty for valid UTF-8 and for other encodings */
  readonly badLines: ReadonlyMap<number, BadUtf8>
}

/**
 * The byte offset of the first byte in `buf[start, end)` that does not begin a valid UTF-8 sequence, or
 * -1. Valid means what `TextDecoder("utf-8", {fatal: true})` accepts: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncated sequence.
 */
export const firstInvalidUtf8 = (buf: Uint8Array, start = 0, end = buf.length): number => {
  let i = start
  while (i < end) {
    const b = buf[i]!
    if (b < 0x80) {
      i++
      continue
    }
    let need: number
    let min: number
    let max = 0xbf
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1
      min = 0x80
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2
      min = b === 0xe0 ? 0xa0 : 0x80
      if (b === 0xed) max = 0x9f
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3
      min = b === 0xf0 ? 0x90 : 0x80
      if (b === 0xf4) max = 0x8f
    } else return i
    if (i + need >= end) return i
    const second = buf[i + 1]!
    if (second < min || second > max) return i
    for (let k = 2; k <= need; k++) {
      const c = buf[i + k]!
      if (c < 0x80 || c > 0xbf) return i
    }
    i += need + 1
  }
  return -1
}

const utf8 = new TextDecoder("utf-8")

// Windows-1252 in 0x80-0x9F (the WHATWG table); the rest is Latin-1.
const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d,
  0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a,
  0x153, 0x9d, 0x17e, 0x178,
]

const decodeCp1252 = (buf: Uint8Array): string =>
  Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
    .toString("latin1")
    .replace(/[\x80-\x9f]/g, (c) => String.fromCharCode(CP1252_HIGH[c.charCodeAt(0) - 0x80]!))

/**
 * A decoder for an encoding label (WHATWG names and aliases); throws a RangeError for an unknown label.
 * Node's TextDecoder decodes windows-1252 (and its aliases latin1, iso-8859-1, us-ascii) as ISO-8859-1,
 * which turns the curly quotes and dashes of 0x80-0x9F into control characters: that one is ours.
 */
export const textDecoder = (label: string): ((buf: Uint8Array) => string) => {
  const decoder = new TextDecoder(label)
  return decoder.encoding === "windows-1252" ? decodeCp1252 : (buf) => decoder.decode(buf)
}

/** Decodes a file's bytes; a UTF-8 byte order mark is dropped. */
export const decodeFile = (buf: Uint8Array, encoding: string): Decoded => {
  if (encoding !== "utf-8") return { text: textDecoder(encoding)(buf), badLines: new Map() }
  // TextDecoder drops the byte order mark, as we want
  const text = utf8.decode(buf)
  if (isUtf8(buf)) return { text, badLines: new Map() }
  const badLines = new Map<number, BadUtf8>()
  let line = 1
  let start = 0
  while (start <= buf.length) {
    let end = buf.indexOf(0x0a, start)
    if (end < 0) end = buf.length
    const bad = firstInvalidUtf8(buf, start, end)
    if (bad >= 0) {
      let from = start
      if (line === 1 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) from = 3
      const column = utf8.decode(buf.subarray(from, bad)).length + 1
      badLines.set(line, { column, byte: buf[bad]! })
    }
    line++
    start = end + 1
  }
  return { text, badLines }
}

/** `0xE9` */
export const hexByte = (b: number): string => `0x${b.toString(16).toUpperCase().padStart(2, "0")}`

/** The problem and the hint for a line that is not UTF-8. */
export const badUtf8Words = (bad: BadUtf8): { problem: string; hint: string } => ({
  problem: `not valid UTF-8 (byte ${hexByte(bad.byte)})`,
  hint: "Save the file as UTF-8, or set `encoding` to the encoding it was written in (for example windows-1252 or gbk)",
})
