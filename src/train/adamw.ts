/**
 * AdamW (Loshchilov & Hutter: Adam with decoupled weight decay), as `torch.optim.AdamW` computes it:
 *
 *   p <- p - lr * wd * p
 *   m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2
 *   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 *
 * Our own rather than `tf.train.adam`: TensorFlow.js has no AdamW, its optimizers take no per-step
 * learning rate (a schedule needs one), and their state cannot be named and saved for a checkpoint
 * resume. Like Hugging Face's Trainer, biases and LayerNorm weights are not decayed.
 */
import * as tf from "@tensorflow/tfjs"

/** AdamW's settings. */
export interface AdamWOptions {
  readonly beta1?: number
  readonly beta2?: number
  readonly epsilon?: number
  /** decoupled weight decay (0.01 in Hugging Face's Trainer default recipes) */
  readonly weightDecay?: number
}

/** The optimizer's state, for a checkpoint: moments by parameter name, and the step count. */
export interface AdamWState {
  readonly step: number
  readonly moments: ReadonlyMap<string, { readonly m: tf.Tensor; readonly v: tf.Tensor }>
}

/** Whether weight decay applies to a parameter (not to biases and LayerNorm parameters). */
export const decays = (name: string): boolean => !name.endsWith(".bias") && !name.includes("LayerNorm")

/** An AdamW optimizer over named variables. Dispose it when done. */
export class AdamW {
  private readonly beta1: number
  private readonly beta2: number
  private readonly epsilon: number
  private readonly weightDecay: number
  private readonly moments = new Map<string, { m: tf.Variable; v: tf.Variable }>()
  private t = 0

  constructor(options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9
    this.beta2 = options.beta2 ?? 0.999
    this.epsilon = options.epsilon ?? 1e-8
    this.weightDecay = options.weightDecay ?? 0
  }

  /** Steps taken so far. */
  get step(): number {
    return this.t
  }

  /** One update of `params` (by name) with `grads` (by name; a missing gradient skips its parameter). */
  apply(
    params: ReadonlyMap<string, tf.Variable>,
    grads: Readonly<Record<string, tf.Tensor>>,
    lr: number,
  ): void {
    this.t += 1
    const c1 = 1 - this.beta1 ** this.t
    const c2 = 1 - this.beta2 ** this.t
    for (const [name, p] of params) {
      const g = grads[name]
      if (g === undefined) continue
      let state = this.moments.get(name)
      if (state === undefined) {
        state = { m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false) }
        this.moments.set(name, state)
      }
      const { m, v } = state
      tf.tidy(() => {
        const m1 = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1))
        const v1 = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2))
        m.assign(m1)
        v.assign(v1)
        const update = tf.div(tf.div(m1, c1), tf.add(tf.sqrt(tf.div(v1, c2)), this.epsilon))
        const decayed = this.weightDecay > 0 && decays(name) ? tf.mul(p, 1 - lr * this.weightDecay) : p
        p.assign(tf.sub(decayed, tf.mul(update, lr)))
      })
    }
  }

  /** The state, for a checkpoint (the tensors stay owned by the optimizer). */
  state(): AdamWState {
    return { step: this.t, moments: new Map(this.moments) }
  }

  /** Continue from a saved state (the caller keeps ownership of its tensors). */
  restore(state: AdamWState): void {
    this.dispose()
    this.t = state.step
    for (const [name, { m, v }] of state.moments)
      this.moments.set(name, { m: tf.variable(m.clone(), false), v: tf.variable(v.clone(), false) })
  }

  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose()
      v.dispose()
    }
    this.moments.clear()
  }
}
