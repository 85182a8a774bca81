/**
 * Multinomial logistic regression with an L2 penalty on sparse rows, fitted by L-BFGS: what scikit-learn's
 * `LogisticRegression(solver="lbfgs")` fits. The objective is the mean cross-entropy plus `l2 / 2 * |W|^2`
 * (the bias is not penalised); `l2 = 1 / (C * n)` is sklearn's `C`. It is convex, so the result depends only
 * on the data, and the arithmetic runs in a fixed order in float64: the same rows give the same bits.
 *
 * Written here rather than taken from npm: `ml-logistic-regression` (the one maintained package) fits one
 * binary model per class by plain gradient descent with a fixed step, on dense `ml-matrix` rows. The bag of
 * words of SpamAssassin's 4,700 training messages over an 8,000-token vocabulary is a 4,700 x 8,000 dense
 * matrix there (300 MB of float64) and thousands of full passes; sparse rows and L-BFGS fit it in well
 * under a second. The algorithm is short and textbook (Nocedal & Wright, algorithms 7.4 and 3.1).
 */
import type { SparseRows } from "./tfidf.js"

/** Settings of `fitLogistic`. */
export interface LogisticOptions {
  /** the L2 penalty's strength on the mean loss */
  readonly l2: number
  /** most L-BFGS iterations (default 200) */
  readonly maxIterations?: number
  /** stop when every gradient entry is below this (default 1e-5; scikit-learn stops at 1e-4) */
  readonly gradientTolerance?: number
  /** remembered curvature pairs (default 10) */
  readonly memory?: number
}

/** A fitted model: weights `[features, classes]` row-major, and a bias per class. */
export interface LogisticModel {
  readonly classes: number
  readonly features: number
  readonly weights: Float64Array
  readonly bias: Float64Array
  /** L-BFGS iterations taken */
  readonly iterations: number
  /** whether the gradient tolerance was reached (else the iteration limit or no further progress) */
  readonly converged: boolean
  /** the objective at the solution (mean training cross-entropy plus the penalty) */
  readonly objective: number
}

/** Class probabilities for each row of `x`, row-major `[rows, classes]`, from parameters `theta` = weights then bias. */
const probabilities = (theta: Float64Array, x: SparseRows, k: number): Float64Array => {
  const out = new Float64Array(x.rows * k)
  const biasAt = x.features * k
  const { indptr, indices, values } = x
  for (let r = 0; r < x.rows; r++) {
    const base = r * k
    for (let c = 0; c < k; c++) out[base + c] = theta[biasAt + c]!
    for (let e = indptr[r]!; e < indptr[r + 1]!; e++) {
      const v = values[e]!
      const at = indices[e]! * k
      for (let c = 0; c < k; c++) out[base + c] = out[base + c]! + v * theta[at + c]!
    }
    let max = out[base]!
    for (let c = 1; c < k; c++) if (out[base + c]! > max) max = out[base + c]!
    let sum = 0
    for (let c = 0; c < k; c++) {
      const ez = Math.exp(out[base + c]! - max)
      out[base + c] = ez
      sum += ez
    }
    for (let c = 0; c < k; c++) out[base + c] = out[base + c]! / sum
  }
  return out
}

/** The objective and its gradient (written into `grad`) at `theta`. */
const objective = (
  theta: Float64Array,
  grad: Float64Array,
  x: SparseRows,
  y: Int32Array,
  k: number,
  l2: number,
): number => {
  const n = x.rows
  const p = probabilities(theta, x, k)
  const biasAt = x.features * k
  grad.fill(0)
  const { indptr, indices, values } = x
  let loss = 0
  for (let r = 0; r < n; r++) {
    const base = r * k
    const label = y[r]!
    loss -= Math.log(Math.max(p[base + label]!, 1e-300))
    p[base + label] = p[base + label]! - 1
    for (let c = 0; c < k; c++) grad[biasAt + c] = grad[biasAt + c]! + p[base + c]!
    for (let e = indptr[r]!; e < indptr[r + 1]!; e++) {
      const v = values[e]!
      const at = indices[e]! * k
      for (let c = 0; c < k; c++) grad[at + c] = grad[at + c]! + v * p[base + c]!
    }
  }
  let penalty = 0
  for (let i = 0; i < biasAt; i++) {
    const w = theta[i]!
    penalty += w * w
    grad[i] = grad[i]! / n + l2 * w
  }
  for (let i = biasAt; i < grad.length; i++) grad[i] = grad[i]! / n
  return loss / n + (l2 / 2) * penalty
}

const dot = (a: Float64Array, b: Float64Array): number => {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!
  return s
}

const maxAbs = (a: Float64Array): number => {
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!))
  return m
}

/** Fit the model to rows `x` with label ids `y` (each in `[0, classes)`). */
export const fitLogistic = (
  x: SparseRows,
  y: Int32Array,
  classes: number,
  options: LogisticOptions,
): LogisticModel => {
  if (y.length !== x.rows) throw new Error(`${x.rows} rows but ${y.length} labels`)
  const k = classes
  const size = x.features * k + k
  const maxIterations = options.maxIterations ?? 200
  const gtol = options.gradientTolerance ?? 1e-5
  const memory = options.memory ?? 10
  let theta = new Float64Array(size)
  let grad = new Float64Array(size)
  let f = objective(theta, grad, x, y, k, options.l2)
  const s: Float64Array[] = []
  const yy: Float64Array[] = []
  const rho: number[] = []
  const direction = new Float64Array(size)
  const alpha = new Array<number>(memory).fill(0)
  let iterations = 0
  let converged = maxAbs(grad) < gtol
  const trial = new Float64Array(size)
  const trialGrad = new Float64Array(size)
  while (!converged && iterations < maxIterations) {
    // two-loop recursion: direction = -H grad
    for (let i = 0; i < size; i++) direction[i] = -grad[i]!
    for (let j = s.length - 1; j >= 0; j--) {
      alpha[j] = rho[j]! * dot(s[j]!, direction)
      const yj = yy[j]!
      for (let i = 0; i < size; i++) direction[i] = direction[i]! - alpha[j]! * yj[i]!
    }
    if (s.length > 0) {
      const last = s.length - 1
      const gamma = dot(s[last]!, yy[last]!) / dot(yy[last]!, yy[last]!)
      for (let i = 0; i < size; i++) direction[i] = direction[i]! * gamma
    }
    for (let j = 0; j < s.length; j++) {
      const beta = rho[j]! * dot(yy[j]!, direction)
      const sj = s[j]!
      for (let i = 0; i < size; i++) direction[i] = direction[i]! + (alpha[j]! - beta) * sj[i]!
    }
    let slope = dot(grad, direction)
    if (!(slope < 0)) {
      // not a descent direction (lost curvature information): restart from steepest descent
      s.length = 0
      yy.length = 0
      rho.length = 0
      for (let i = 0; i < size; i++) direction[i] = -grad[i]!
      slope = dot(grad, direction)
    }
    // backtracking line search (Armijo); the first step is scaled, later ones start at 1
    let step = s.length === 0 ? Math.min(1, 1 / Math.sqrt(-slope)) : 1
    let fTrial = Number.POSITIVE_INFINITY
    for (let tries = 0; tries < 50; tries++) {
      for (let i = 0; i < size; i++) trial[i] = theta[i]! + step * direction[i]!
      fTrial = objective(trial, trialGrad, x, y, k, options.l2)
      if (fTrial <= f + 1e-4 * step * slope) break
      step /= 2
    }
    iterations++
    if (!(fTrial < f)) break // no progress possible at float64 precision
    const sNew = new Float64Array(size)
    const yNew = new Float64Array(size)
    for (let i = 0; i < size; i++) {
      sNew[i] = trial[i]! - theta[i]!
      yNew[i] = trialGrad[i]! - grad[i]!
    }
    const sy = dot(sNew, yNew)
    if (sy > 1e-12) {
      if (s.length === memory) {
        s.shift()
        yy.shift()
        rho.shift()
      }
      s.push(sNew)
      yy.push(yNew)
      rho.push(1 / sy)
    }
    const improvement = f - fTrial
    ;[theta, grad] = [Float64Array.from(trial), Float64Array.from(trialGrad)]
    f = fTrial
    converged = maxAbs(grad) < gtol
    if (improvement <= 1e-12 * Math.max(1, Math.abs(f))) break
  }
  return {
    classes: k,
    features: x.features,
    weights: theta.slice(0, x.features * k),
    bias: theta.slice(x.features * k),
    iterations,
    converged,
    objective: f,
  }
}

/** Class probabilities of each row, row-major `[rows, classes]`. */
export const predictLogistic = (model: LogisticModel, x: SparseRows): Float64Array => {
  if (x.features !== model.features)
    throw new Error(`the rows have ${x.features} features, the model ${model.features}`)
  const theta = new Float64Array(model.weights.length + model.bias.length)
  theta.set(model.weights)
  theta.set(model.bias, model.weights.length)
  return probabilities(theta, x, model.classes)
}
