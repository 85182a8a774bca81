/**
 * Split decoded text into lines the way `node:readline` does with `crlfDelay: Infinity`: a line ends at
 * `\n`, `\r\n` or a lone `\r`; a `\r\n` split across two chunks is one break; a last line without a break is
 * given at the end. The spawner uses it instead of one `readline` interface per pipe (three per stage).
 */

/** A line splitter: feed it chunks, then end it. */
export interface LineSplitter {
  readonly push: (chunk: string) => void
  readonly end: () => void
}

/** Make a splitter that calls `onLine` with each complete line. */
export const lineSplitter = (onLine: (line: string) => void): LineSplitter => {
  let rest = ""
  /** the previous chunk ended with `\r`: a `\n` starting the next one belongs to that break */
  let afterCr = false
  return {
    push: (chunk) => {
      let text = chunk
      if (afterCr && text.charCodeAt(0) === 10) text = text.slice(1)
      afterCr = false
      let start = 0
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (c !== 10 && c !== 13) continue
        onLine(rest + text.slice(start, i))
        rest = ""
        if (c === 13) {
          if (i + 1 === text.length) afterCr = true
          else if (text.charCodeAt(i + 1) === 10) i++
        }
        start = i + 1
      }
      rest += text.slice(start)
    },
    end: () => {
      if (rest.length > 0) onLine(rest)
      rest = ""
    },
  }
}
