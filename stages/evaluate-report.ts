/**
 * `report.md` of an evaluate stage: metrics.json for a person. A table of every model and the baseline,
 * each one's confusion matrix and per-label scores, and the listed examples.
 */
import type { EvaluateMetrics, PredictorMetrics } from "./evaluate.js"

const pct = (x: number) => `${(x * 100).toFixed(1)}%`

/** Text safe inside a Markdown table cell, on one line, at most `max` characters. */
const cell = (text: string, max = 160): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  const cut = [...flat].length > max ? `${[...flat].slice(0, max - 1).join("")}…` : flat
  return cut.replaceAll("\\", "\\\\").replaceAll("|", "\\|")
}

/** A Markdown table; the columns from `numbersFrom` on hold numbers and are aligned right. */
const table = (
  head: ReadonlyArray<string>,
  rows: ReadonlyArray<ReadonlyArray<string>>,
  numbersFrom = 1,
): string[] => [
  `| ${head.join(" | ")} |`,
  `| ${head.map((_, i) => (i < numbersFrom ? "---" : "---:")).join(" | ")} |`,
  ...rows.map((r) => `| ${r.join(" | ")} |`),
]

const details = (name: string, m: PredictorMetrics, labels: ReadonlyArray<string>): string[] => [
  `### ${name}`,
  "",
  "Confusion matrix (rows: true label, columns: predicted):",
  "",
  ...table(
    ["true \\ predicted", ...labels.map((l) => cell(l))],
    m.confusion.map((row, t) => [cell(labels[t]!), ...row.map(String)]),
  ),
  "",
  ...table(
    ["label", "precision", "recall", "F1", "support"],
    labels.map((l) => {
      const s = m.per_label[l]!
      return [cell(l), pct(s.precision), pct(s.recall), pct(s.f1), String(s.support)]
    }),
  ),
  "",
]

/** The report's Markdown. */
export const renderReport = (m: EvaluateMetrics): string => {
  const names = Object.keys(m.models)
  const rows: Array<[string, PredictorMetrics]> = names.map((n) => [
    n === m.primary ? `**${n}** (primary)` : n,
    m.models[n]!,
  ])
  if (m.baseline !== null) rows.push(["baseline: TF-IDF + logistic regression", m.baseline])
  const lines = [
    "# Evaluation",
    "",
    `${m.examples} examples of the \`${m.split}\` split; labels ${m.labels.map((l) => `\`${l}\``).join(", ")}. Backend: ${m.backend.name}.`,
    "",
    ...table(
      ["model", "accuracy", "macro precision", "macro recall", "macro F1", "loss"],
      rows.map(([n, s]) => [
        n,
        pct(s.accuracy),
        pct(s.precision_macro),
        pct(s.recall_macro),
        pct(s.f1_macro),
        s.loss.toFixed(4),
      ]),
    ),
    "",
  ]
  if (m.baseline !== null) {
    const b = m.baseline.info
    const beat = m.accuracy - m.baseline.accuracy
    lines.push(
      `The baseline learnt from ${b.train_rows} training rows over ${b.features} token ids (L2 ${b.l2}, ${b.iterations} iterations${b.converged ? "" : ", not converged"}). ` +
        `The primary model is ${Math.abs(beat * 100).toFixed(1)} points of accuracy ${beat >= 0 ? "above" : "below"} it.`,
      "",
    )
  }
  lines.push("## Per model", "")
  for (const n of names) lines.push(...details(n, m.models[n]!, m.labels))
  if (m.baseline !== null) lines.push(...details("baseline", m.baseline, m.labels))
  lines.push(
    m.listed === "disagreements" ? "## Where the models disagree" : "## Where the model is wrong",
    "",
    m.listed === "disagreements"
      ? `${m.disagreements} of ${m.examples} examples get different predictions; ${m.disagreement_examples.length === m.disagreements ? "all" : `the ${m.disagreement_examples.length} with the widest gap in the probability of the true label`} below.`
      : `${m.disagreements} of ${m.examples} examples are misclassified; ${m.disagreement_examples.length === m.disagreements ? "all" : `the ${m.disagreement_examples.length} most confident mistakes`} below.`,
    "",
  )
  if (m.disagreement_examples.length > 0) {
    const heads = [...names, ...(m.baseline === null ? [] : ["baseline"])]
    lines.push(
      ...table(
        ["row", "text", "true", ...heads],
        m.disagreement_examples.map((e) => [
          String(e.row),
          cell(e.text),
          cell(e.label),
          ...names.map((n) => {
            const p = e.predictions[n]!
            return `${cell(p.label)} (${pct(p.probability)})`
          }),
          ...(e.baseline === undefined ? [] : [`${cell(e.baseline.label)} (${pct(e.baseline.probability)})`]),
        ]),
        Number.POSITIVE_INFINITY,
      ),
      "",
    )
  }
  return `${lines.join("\n")}`
}
