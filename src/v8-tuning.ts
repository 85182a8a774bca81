/**
 * V8's optimizing-compiler budget for the part of a run that runs stages. V8 optimizes a function once it
 * has run for a while (its interrupt budget); `bin/pipeline.js` starts Node 20 with twice the default budget,
 * which suits loading the pipeline (the YAML parser's hot loops still get optimized). Once stages run, the
 * orchestrator's work is many short steps per stage spread over many functions, and optimizing them costs
 * more than it saves in a process that ends with the last stage: with the budget doubled once more for that
 * phase, V8's compiler threads took ~0.4 s less CPU on the 1,000-stage fan-out of `bench/overhead.mjs` and
 * the run 8% less wall-clock time (A/B runs of 7-9 each, README's Performance section); four or eight times
 * more saved no more. Set only on the Node version it was measured on.
 */
import { setFlagsFromString } from "node:v8"

/** The budget while stages run: four times Node 20's default (67584). */
export const STAGE_PHASE_INTERRUPT_BUDGET = 270336

/** Switch V8 to the stage-phase budget; false (nothing changed) on a Node version it was not measured on. */
export const tuneForStages = (nodeVersion: string): boolean => {
  if (!nodeVersion.startsWith("20.")) return false
  setFlagsFromString(`--interrupt-budget=${STAGE_PHASE_INTERRUPT_BUDGET}`)
  return true
}
