import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { invalidToJson, renderDiagnostics, renderInvalid } from "../src/diagnostic.js"
import { type Diagnostic, SpecError, UsageError } from "../src/errors.js"

const dir = mkdtempSync(join(tmpdir(), "pipeline-diag-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
mkdirSync(join(dir, "pipelines"))
writeFileSync(
  join(dir, "pipelines", "p.yaml"),
  ["stages:", "  train:", "    cmdd: echo hi", "\tx: 'a", "    b'"]
    .concat(Array.from({ length: 120 }, () => "#"))
    .join("\n"),
)

const at = (
  line: number,
  column: number,
  endLine: number,
  endColumn: number,
  hint = "Fix it.",
): Diagnostic => ({
  file: "pipelines/p.yaml",
  line,
  column,
  endLine,
  endColumn,
  message: "something is wrong",
  hint,
})

describe("renderDiagnostics", () => {
  it("shows the line with a gutter and a marker under the span, then the hint", () => {
    expect(renderDiagnostics([at(3, 5, 3, 9, 'Did you mean "cmd"?')], { cwd: dir })).toBe(
      [
        "pipelines/p.yaml:3:5: something is wrong",
        "    3 |     cmdd: echo hi",
        "      |     ~~~~",
        '   Did you mean "cmd"?',
      ].join("\n"),
    )
  })

  it("marks to the end of the first line of a multi-line span, keeping tabs aligned", () => {
    expect(renderDiagnostics([at(4, 5, 5, 7)], { cwd: dir })).toBe(
      ["pipelines/p.yaml:4:5: something is wrong", "    4 | \tx: 'a", "      | \t   ~~", "   Fix it."].join(
        "\n",
      ),
    )
  })

  it("draws at least one ~, right-aligns line numbers, and separates diagnostics by a blank line", () => {
    expect(renderDiagnostics([at(1, 1, 1, 1), at(123, 1, 123, 2, "")], { cwd: dir })).toBe(
      [
        "pipelines/p.yaml:1:1: something is wrong",
        "    1 | stages:",
        "      | ~",
        "   Fix it.",
        "",
        "pipelines/p.yaml:123:1: something is wrong",
        "  123 | #",
        "      | ~",
      ].join("\n"),
    )
  })

  it("still says what is wrong when the file cannot be read", () => {
    expect(renderDiagnostics([{ ...at(3, 5, 3, 9), file: "gone.yaml" }], { cwd: dir })).toBe(
      "gone.yaml:3:5: something is wrong\n   Fix it.",
    )
  })
})

describe("renderInvalid and invalidToJson", () => {
  it("renders a usage error as error: and a hint", () => {
    const e = new UsageError({ message: 'unknown stage "x"', hint: 'Did you mean "y"?' })
    expect(renderInvalid(e)).toBe('error: unknown stage "x"\n   Did you mean "y"?')
    expect(invalidToJson(e)).toEqual({
      status: "invalid",
      errors: [{ file: "", line: 0, column: 0, message: 'unknown stage "x"', hint: 'Did you mean "y"?' }],
    })
  })

  it("lists located problems", () => {
    const e = new SpecError({ diagnostics: [at(3, 5, 3, 9)] })
    expect(renderInvalid(e, { cwd: dir })).toBe(renderDiagnostics(e.diagnostics, { cwd: dir }))
    expect(invalidToJson(e)).toEqual({
      status: "invalid",
      errors: [
        { file: "pipelines/p.yaml", line: 3, column: 5, message: "something is wrong", hint: "Fix it." },
      ],
    })
  })
})
