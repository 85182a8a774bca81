/**
 * The loss curve as a self-contained SVG: the training loss per step (light), its moving average (dark),
 * and the validation loss after each epoch (dots), on shared axes with ticks. Hand-written rather than a
 * plotting library: the chart is one polyline and a few labels, and the libraries that draw SVG in Node
 * (vega, d3 + jsdom) would add tens of megabytes to an install for it.
 */
import type { EpochRecord, StepRecord } from "./loop.js"

const W = 640
const H = 360
const M = { left: 56, right: 16, top: 28, bottom: 40 }

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** "Nice" tick values covering [lo, hi]. */
const ticks = (lo: number, hi: number, count = 5): number[] => {
  if (!(hi > lo)) return [lo]
  const raw = (hi - lo) / count
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(6)))
  return out
}

/** The SVG text of a loss curve from the training log. */
export const lossCurveSvg = (log: ReadonlyArray<StepRecord | EpochRecord>, title: string): string => {
  const steps = log.filter((r): r is StepRecord => r.type === "step")
  const epochs = log.filter((r): r is EpochRecord => r.type === "epoch" && r.validation !== undefined)
  const values = [...steps.map((s) => s.loss), ...epochs.map((e) => e.validation!.loss)].filter(
    Number.isFinite,
  )
  const maxStep = Math.max(1, ...steps.map((s) => s.step))
  const lo = values.length === 0 ? 0 : Math.min(0, ...values)
  const hi = values.length === 0 ? 1 : Math.max(...values) * 1.05 || 1
  const x = (step: number) => M.left + ((W - M.left - M.right) * step) / maxStep
  const y = (v: number) => H - M.bottom - ((H - M.top - M.bottom) * (v - lo)) / (hi - lo)
  const window = Math.max(1, Math.round(steps.length / 50))
  const smooth = steps.map((s, i) => {
    const part = steps.slice(Math.max(0, i - window + 1), i + 1)
    return { step: s.step, loss: part.reduce((a, p) => a + p.loss, 0) / part.length }
  })
  const line = (pts: ReadonlyArray<{ step: number; loss: number }>) =>
    pts.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" ")
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="13">${esc(title)}</text>`,
  ]
  for (const t of ticks(lo, hi)) {
    parts.push(
      `<line x1="${M.left}" x2="${W - M.right}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#eee"/>`,
      `<text x="${M.left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`,
    )
  }
  for (const t of ticks(0, maxStep).filter((v) => Number.isInteger(v)))
    parts.push(`<text x="${x(t).toFixed(1)}" y="${H - M.bottom + 16}" text-anchor="middle">${t}</text>`)
  parts.push(
    `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 6}" text-anchor="middle">step</text>`,
    `<text x="14" y="${(M.top + H - M.bottom) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(M.top + H - M.bottom) / 2})">loss</text>`,
  )
  if (steps.length > 0) {
    parts.push(`<polyline fill="none" stroke="#9ecae1" stroke-width="1" points="${line(steps)}"/>`)
    parts.push(`<polyline fill="none" stroke="#08519c" stroke-width="2" points="${line(smooth)}"/>`)
  }
  for (const e of epochs)
    parts.push(
      `<circle cx="${x(e.step).toFixed(1)}" cy="${y(e.validation!.loss).toFixed(1)}" r="4" fill="#e6550d"><title>epoch ${e.epoch}: validation loss ${e.validation!.loss.toFixed(4)}</title></circle>`,
    )
  parts.push(
    `<g transform="translate(${W - M.right - 170},${M.top + 6})">`,
    `<line x1="0" x2="18" y1="0" y2="0" stroke="#08519c" stroke-width="2"/><text x="24" y="4">training loss (moving average)</text>`,
    `<circle cx="9" cy="16" r="4" fill="#e6550d"/><text x="24" y="20">validation loss per epoch</text>`,
    "</g>",
    "</svg>",
  )
  return `${parts.join("\n")}\n`
}
