// The built-in unlabeled corpora, read from the npm packages that ship them.
import { describe, expect, it } from "vitest"
import { builtinDatasets, datasetDep, datasetFolder } from "../stages/datasets.js"
import { readDataset } from "../stages/ingest-datasets.js"

const dataset = (name: string) => builtinDatasets.get(name)!
const none = () => {}

describe("built-in datasets", () => {
  it("resolve to the data folders of their installed packages", () => {
    for (const d of builtinDatasets.values()) {
      expect(datasetFolder(d)).toMatch(new RegExp(`node_modules/${d.package}/data$`))
      expect(datasetDep(d)).toBe(datasetFolder(d))
    }
    expect(datasetDep({ ...dataset("sotu"), package: "@stdlib/not-installed" })).toBe(
      "node_modules/@stdlib/not-installed/data",
    )
  })

  it("read moby-dick as paragraphs, without the contents and the chapter headings, long ones in chunks", async () => {
    const rows = await readDataset(dataset("moby-dick"), undefined, none)
    expect(rows.length).toBe(2909)
    expect(Math.max(...rows.map((r) => [...r.text].length))).toBe(1000)
    expect(rows[0]!.text.slice(0, 60)).toBe("The pale Usher—threadbare in coat, heart, body, and brain; I")
    expect(rows[0]!.at).toEqual({ file: "moby-dick/etymology.txt", line: 3 })
    expect(rows.some((r) => /^CHAPTER \d+\./.test(r.text))).toBe(false)
  })

  it("read sotu in chunks of whole sentences of at most 1,000 characters", async () => {
    const rows = await readDataset(dataset("sotu"), undefined, none)
    expect(rows.length).toBe(12378)
    expect(rows[0]!.text.slice(0, 60)).toBe("Fellow-Citizens of the Senate and House of Representatives: ")
    // each chunk ends a sentence, and the next starts one
    expect(rows[0]!.text).toMatch(/[.!?]["')]*$/)
    expect(rows[1]!.text.slice(0, 40)).toBe("The punctuality of the former in dischar")
    expect(Math.max(...rows.map((r) => [...r.text].length))).toBe(1000)
    expect(rows.every((r) => r.label === undefined)).toBe(true)
  })
})
