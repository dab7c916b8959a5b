/**
 * Plain TypeScript references for every kernel: the simplest loops that state each op's meaning, in
 * float64 unless the op itself is defined by an f32 step (RoPE's angle). The op-parity table compares
 * the CPU library against these; nothing here is shared with the code under test.
 */

export type Arr = ArrayLike<number>;

export function embedding(table: Arr, dim: number, ids: Arr, scale: number): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let i = 0; i < ids.length; i++) {
    for (let j = 0; j < dim; j++) out[i * dim + j] = table[ids[i] * dim + j] * scale;
  }
  return out;
}

export function rmsNorm(x: Arr, w: Arr | null, mode: "plain" | "scale" | "one_plus", eps: number, dim: number) {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[r * dim + j] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) {
      const m = mode === "plain" ? 1 : mode === "scale" ? w![j] : 1 + w![j];
      out[r * dim + j] = x[r * dim + j] * inv * m;
    }
  }
  return out;
}

export function layerNorm(x: Arr, w: Arr, b: Arr | null, eps: number, dim: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let mean = 0;
    for (let j = 0; j < dim; j++) mean += x[r * dim + j];
    mean /= dim;
    let variance = 0;
    for (let j = 0; j < dim; j++) variance += (x[r * dim + j] - mean) ** 2;
    const inv = 1 / Math.sqrt(variance / dim + eps);
    for (let j = 0; j < dim; j++) out[r * dim + j] = (x[r * dim + j] - mean) * inv * w[j] + (b ? b[j] : 0);
  }
  return out;
}

/** im2col of Conv2d(kernel = stride = patch): [n, c, h, w] -> [n, (h/p)(w/p), c·p·p], rows in (c, ky, kx) order. */
export function patchExtract(px: Arr, n: number, c: number, h: number, w: number, p: number): Float64Array {
  const gw = w / p, row = c * p * p, cells = (h / p) * gw;
  const out = new Float64Array(n * cells * row);
  for (let i = 0; i < out.length; i++) {
    const e = i % row, cell = Math.floor(i / row) % cells, b = Math.floor(i / (row * cells));
    const ch = Math.floor(e / (p * p)), ky = Math.floor(e / p) % p, kx = e % p;
    const y = Math.floor(cell / gw) * p + ky, x = (cell % gw) * p + kx;
    out[i] = px[((b * c + ch) * h + y) * w + x];
  }
  return out;
}

/** nn.AvgPool2d(k, stride k) on NCHW, fed the token-major grid transposed as the Gemma 3 projector does. */
export function avgPool2d(x: Arr, n: number, gh: number, gw: number, c: number, k: number): Float64Array {
  const oh = gh / k, ow = gw / k;
  const out = new Float64Array(n * oh * ow * c);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let oy = 0; oy < oh; oy++) {
        for (let ox = 0; ox < ow; ox++) {
          let sum = 0;
          for (let y = oy * k; y < (oy + 1) * k; y++) {
            for (let xx = ox * k; xx < (ox + 1) * k; xx++) sum += x[((b * gh + y) * gw + xx) * c + ch];
          }
          out[((b * oh + oy) * ow + ox) * c + ch] = sum / (k * k);
        }
      }
    }
  }
  return out;
}

/** y[o] = scale · Σ_j x[idx[o·k + j]] over ids in [0, rows). */
export function gatherSum(x: Arr, rows: number, cols: number, idx: Arr, outRows: number, k: number, scale: number) {
  const out = new Float64Array(outRows * cols);
  for (let o = 0; o < outRows; o++) {
    for (let j = 0; j < k; j++) {
      const r = idx[o * k + j];
      if (r < 0 || r >= rows) continue;
      for (let c = 0; c < cols; c++) out[o * cols + c] += x[r * cols + c];
    }
    for (let c = 0; c < cols; c++) out[o * cols + c] *= scale;
  }
  return out;
}

/** apply_multidimensional_rope: `axes` parts of the head, part a at positions[t·axes + a]. */
export function ropeAxes(
  x: Arr,
  tokens: number,
  heads: number,
  headDim: number,
  axes: number,
  positions: Arr,
  invFreq: Arr,
) {
  const out = Float64Array.from(x);
  const part = headDim / axes, half = part / 2;
  for (let t = 0; t < tokens; t++) {
    for (let a = 0; a < axes; a++) {
      for (let j = 0; j < half; j++) {
        const angle = Math.fround(Math.fround(positions[t * axes + a]) * invFreq[j]);
        const c = Math.cos(angle), s = Math.sin(angle);
        for (let h = 0; h < heads; h++) {
          const base = (t * heads + h) * headDim + a * part;
          const x1 = x[base + j], x2 = x[base + j + half];
          out[base + j] = x1 * c - x2 * s;
          out[base + j + half] = x2 * c + x1 * s;
        }
      }
    }
  }
  return out;
}

/** torch.clamp. */
export function clamp(x: Arr, lo: number, hi: number): Float64Array {
  // The kernel takes f32 bounds.
  return Float64Array.from(x, (v) => Math.min(Math.max(v, Math.fround(lo)), Math.fround(hi)));
}

export function linear(x: Arr, w: Arr, b: Arr | null, m: number, n: number, k: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let o = 0; o < n; o++) {
      let acc = b ? b[o] : 0;
      for (let t = 0; t < k; t++) acc += x[i * k + t] * w[o * k + t];
      out[i * n + o] = acc;
    }
  }
  return out;
}

/** transformers forms the angle `position * inv_freq` in f32; cos and sin are then exact here. */
export function rope(
  x: Arr,
  tokens: number,
  heads: number,
  headDim: number,
  rotaryDim: number,
  positions: Arr,
  invFreq: Arr,
) {
  const out = Float64Array.from(x);
  const half = rotaryDim / 2;
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let j = 0; j < half; j++) {
        const angle = Math.fround(Math.fround(positions[t]) * invFreq[j]);
        const c = Math.cos(angle), s = Math.sin(angle);
        const x1 = x[base + j], x2 = x[base + j + half];
        out[base + j] = x1 * c - x2 * s;
        out[base + j + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/** softmax(scores) · values for one query over the keys `visible` lists; zeros when none is visible. */
function attendOne(
  q: Arr,
  qOff: number,
  key: (p: number) => number, // offset of key p's head vector in k/v
  k: Arr,
  v: Arr,
  visible: number[],
  headDim: number,
  scale: number,
  softcap: number,
  out: Float64Array,
  outOff: number,
) {
  if (visible.length === 0) return;
  const scores = visible.map((p) => {
    let dot = 0;
    for (let d = 0; d < headDim; d++) dot += q[qOff + d] * k[key(p) + d];
    const s = dot * scale;
    return softcap > 0 ? softcap * Math.tanh(s / softcap) : s;
  });
  const max = Math.max(...scores);
  const e = scores.map((s) => Math.exp(s - max));
  const sum = e.reduce((a, b) => a + b, 0);
  visible.forEach((p, i) => {
    for (let d = 0; d < headDim; d++) out[outOff + d] += (e[i] / sum) * v[key(p) + d];
  });
}

export interface PrefillRef {
  qLen: number;
  kvLen: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  qPos0: number;
  causal: boolean;
  window: number;
  spanIds: Arr | null;
  scale: number;
  softcap: number;
}

export function attentionPrefill(q: Arr, k: Arr, v: Arr, o: PrefillRef): Float64Array {
  const out = new Float64Array(o.qLen * o.qHeads * o.headDim);
  const group = o.qHeads / o.kvHeads;
  for (let i = 0; i < o.qLen; i++) {
    const p = o.qPos0 + i;
    const visible: number[] = [];
    for (let j = 0; j < o.kvLen; j++) {
      // transformers' sliding masks: AND(window, OR(causal, same span)).
      const inWindow = o.window === 0 || j > p - o.window;
      const span = o.spanIds !== null && o.spanIds[j] !== 0 && o.spanIds[j] === o.spanIds[p];
      if (inWindow && (!o.causal || j <= p || span)) visible.push(j);
    }
    for (let h = 0; h < o.qHeads; h++) {
      const kvh = Math.floor(h / group);
      const off = (i * o.qHeads + h) * o.headDim;
      const key = (j: number) => (j * o.kvHeads + kvh) * o.headDim;
      attendOne(q, off, key, k, v, visible, o.headDim, o.scale, o.softcap, out, off);
    }
  }
  return out;
}

/**
 * Decode attention stated over the *history* of keys (position p's K/V at row p), not the cache: the
 * visible positions are the last min(window, capacity) up to `position`. The kernel reads a ring
 * buffer; agreeing with this proves its slot arithmetic.
 */
export function attentionDecode(
  q: Arr,
  kHistory: Arr,
  vHistory: Arr,
  o: {
    qHeads: number;
    kvHeads: number;
    headDim: number;
    capacity: number;
    window: number;
    position: number;
    scale: number;
    softcap: number;
  },
): Float64Array {
  const out = new Float64Array(o.qHeads * o.headDim);
  const span = Math.min(o.window > 0 ? o.window : Infinity, o.capacity);
  const visible: number[] = [];
  for (let p = Math.max(0, o.position - span + 1); p <= o.position; p++) visible.push(p);
  const group = o.qHeads / o.kvHeads;
  for (let h = 0; h < o.qHeads; h++) {
    const kvh = Math.floor(h / group);
    const key = (p: number) => (p * o.kvHeads + kvh) * o.headDim;
    attendOne(q, h * o.headDim, key, kHistory, vHistory, visible, o.headDim, o.scale, o.softcap, out, h * o.headDim);
  }
  return out;
}

export function kvCacheWrite(
  cache: Arr,
  src: Arr,
  tokens: number,
  rowElems: number,
  capacity: number,
  position0: number,
) {
  const out = Float64Array.from(cache);
  for (let t = 0; t < tokens; t++) {
    const slot = (position0 + t) % capacity;
    for (let e = 0; e < rowElems; e++) out[slot * rowElems + e] = src[t * rowElems + e];
  }
  return out;
}

export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
}

export function map2(a: Arr, b: Arr, f: (u: number, v: number) => number): Float64Array {
  return Float64Array.from({ length: a.length }, (_, i) => f(a[i], b[i % b.length]));
}

export function softmax(x: Arr, cols: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / cols; r++) {
    let max = -Infinity;
    for (let j = 0; j < cols; j++) max = Math.max(max, x[r * cols + j]);
    let sum = 0;
    for (let j = 0; j < cols; j++) sum += Math.exp(x[r * cols + j] - max);
    for (let j = 0; j < cols; j++) out[r * cols + j] = Math.exp(x[r * cols + j] - max) / sum;
  }
  return out;
}

/** torch.argmax: first maximum, and the first NaN beats every number. */
export function argmax(x: Arr, cols: number): Int32Array {
  const out = new Int32Array(x.length / cols);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let j = 0; j < cols; j++) {
      const v = x[r * cols + j];
      if (Number.isNaN(v)) {
        best = j;
        break;
      }
      if (v > x[r * cols + best]) best = j;
    }
    out[r] = best;
  }
  return out;
}

// ---- sampling -------------------------------------------------------------------------------------
// gk_sample restated from its documentation (kernels/include/gemmakit.h, kernels/common/sampling.h):
// the same RNG hash and the same f32 exp, reimplemented here, and the plainest selection — a full sort
// — where the kernels use nth_element or bisection. Exact f32 arithmetic: every basic operation is done
// in f64 and rounded with Math.fround (innocuous double rounding for + − × ÷); FMA is emulated exactly.

const f32 = Math.fround;
const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** lowbias32, as sample_mix32. */
export function sampleMix32(x: number): number {
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x = (x ^ (x >>> 15)) >>> 0;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** The sampler's RNG: u = sampleU24(seed, step) / 2^24. */
export function sampleU24(seed: number, step: number): number {
  const h = sampleMix32((sampleMix32((seed ^ 0x9e3779b9) >>> 0) + (step >>> 0)) >>> 0);
  return h >>> 8;
}

/** The f32 neighbour of the f32 value x towards +inf (dir 1) or -inf (dir -1); x finite. */
function nextF32(x: number, dir: 1 | -1): number {
  if (x === 0) return dir * 2 ** -149;
  f32Bits[0] = x;
  u32Bits[0] += (x > 0) === (dir > 0) ? 1 : -1;
  return f32Bits[0];
}

/** fmaf: a·b + c rounded once to f32 (a, b, c f32). */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b; // exact: two 24-bit significands
  const s = p + c;
  const bb = s - p;
  const e = (p - (s - bb)) + (c - bb); // s + e = p + c exactly (TwoSum)
  const r = f32(s);
  if (e === 0 || r === s || !Number.isFinite(r)) return r;
  // s is exact to 53 bits; only when it sits exactly halfway between two f32 values does e decide.
  const other = nextF32(r, s > r ? 1 : -1);
  if (s !== (r + other) / 2) return r;
  return (e > 0) === (other > r) ? other : r;
}

/** rintf in round-to-nearest-even. */
function rintEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** sample_exp: exp(x) for x <= 0 in f32, bit for bit as the kernels compute it. */
export function sampleExp(x: number): number {
  if (!(x >= -28)) return 0;
  if (x >= 0) return 1;
  const k = rintEven(f32(x * f32(1.44269502)));
  let r = fmaF32(k, f32(-0.693145752), x);
  r = fmaF32(k, f32(-1.42860677e-6), r);
  let p = f32(1.38888889e-3);
  for (const c of [8.33333333e-3, 4.16666667e-2, 1.66666667e-1, 0.5, 1, 1]) p = fmaF32(p, r, f32(c));
  return f32(p * 2 ** k);
}

export interface SampleRef {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  seed: number;
}

export const STATE_POSITION = 0, STATE_TOKEN = 1, STATE_HISTORY = 2, STATE_DONE = 3, STATE_STEP = 4;

/**
 * One gk_sample call: updates `logits` (f32, penalty and temperature), `state` and `history` in place.
 */
export function sample(
  logits: Float32Array,
  params: SampleRef,
  state: Int32Array,
  history: Int32Array,
  stopIds: Arr,
): void {
  if (state[STATE_DONE] !== 0) return;
  const vocab = logits.length, cap = history.length;
  const temperature = f32(params.temperature), penalty = f32(params.repetitionPenalty);
  const topP = f32(params.topP), minP = f32(params.minP);

  // transformers' RepetitionPenaltyLogitsProcessor: each distinct id of the history once.
  if (penalty !== 1) {
    const seen = new Set<number>();
    for (let j = 0; j < Math.min(Math.max(state[STATE_HISTORY], 0), cap); j++) {
      const id = history[j];
      if (id < 0 || id >= vocab || seen.has(id)) continue;
      seen.add(id);
      const l = logits[id];
      logits[id] = l < 0 ? l * penalty : l / penalty; // Float32Array stores round to f32
    }
  }

  let token: number;
  if (!(temperature > 0)) {
    token = argmax(logits, vocab)[0];
  } else {
    for (let i = 0; i < vocab; i++) logits[i] = logits[i] / temperature;
    const rank = (l: number) => Number.isNaN(l) ? -Infinity : l;
    let m = -Infinity;
    for (let i = 0; i < vocab; i++) m = Math.max(m, rank(logits[i]));
    if (m === -Infinity) {
      token = argmax(logits, vocab)[0];
    } else {
      const w = new Float32Array(vocab);
      const mass: bigint[] = new Array(vocab);
      for (let i = 0; i < vocab; i++) {
        w[i] = logits[i] === m ? 1 : sampleExp(f32(logits[i] - m));
        mass[i] = BigInt(Math.floor(w[i] * 2 ** 40)); // exact: a power-of-two scale of an f32
      }
      const kept = new Uint8Array(vocab).fill(1);
      const topK = params.topK > 0 && params.topK < vocab;
      if (topK || topP < 1) {
        // Most likely first; equal logits (and -0 = +0) go by id.
        const order = Array.from({ length: vocab }, (_, i) => i);
        order.sort((a, b) => rank(logits[b]) - rank(logits[a]) || a - b);
        let survivors = topK ? order.slice(0, params.topK) : order;
        if (topP < 1) {
          let total = 0n;
          for (const i of survivors) total += mass[i];
          const target = topP * Number(total);
          let cum = 0n, n = 0;
          while (n < survivors.length) {
            cum += mass[survivors[n++]];
            if (Number(cum) >= target) break;
          }
          survivors = survivors.slice(0, n);
        }
        kept.fill(0);
        for (const i of survivors) kept[i] = 1;
      }
      // min-p: the most likely token has weight 1.
      for (let i = 0; i < vocab; i++) if (w[i] < minP) kept[i] = 0;
      let total = 0n;
      for (let i = 0; i < vocab; i++) if (kept[i]) total += mass[i];
      const r = (BigInt(sampleU24(params.seed, state[STATE_STEP])) * total) >> 24n;
      let cum = 0n;
      token = -1;
      for (let i = 0; i < vocab && token < 0; i++) {
        if (!kept[i]) continue;
        cum += mass[i];
        if (cum > r) token = i;
      }
    }
  }

  state[STATE_TOKEN] = token;
  let h = state[STATE_HISTORY];
  if (h >= 0 && h < cap) {
    history[h] = token;
    state[STATE_HISTORY] = ++h;
  }
  state[STATE_POSITION] += 1;
  state[STATE_STEP] += 1;
  if (h >= cap || Array.from(stopIds).includes(token)) state[STATE_DONE] = 1;
}

/**
 * Gemma4TextRouter after its projection: softmax, the top_k largest (descending, equal values to the lower id),
 * divided by their sum, times per_expert_scale[id].
 */
export function moeRoute(logits: Arr, scale: Arr | null, experts: number, topK: number) {
  const tokens = logits.length / experts;
  const ids = new Int32Array(tokens * topK), weights = new Float64Array(tokens * topK);
  const p = softmax(logits, experts);
  for (let t = 0; t < tokens; t++) {
    const order = Array.from({ length: experts }, (_, j) => j);
    order.sort((a, b) => p[t * experts + b] - p[t * experts + a] || a - b);
    const chosen = order.slice(0, topK);
    const sum = chosen.reduce((s, j) => s + p[t * experts + j], 0);
    chosen.forEach((j, i) => {
      ids[t * topK + i] = j;
      weights[t * topK + i] = p[t * experts + j] / sum * (scale ? scale[j] : 1);
    });
  }
  return { ids, weights };
}

/**
 * Gemma4TextExperts: out[t] = Σ_j weights[t, j] · down[e] · (gelu_tanh(gate) · up), [gate; up] = gate_up[e] · x[t],
 * e = ids[t, j]; gate_up [E, 2I, H], down [E, H, I].
 */
export function moeExperts(
  x: Arr,
  ids: Arr,
  weights: Arr,
  gateUp: Arr,
  down: Arr,
  topK: number,
  hidden: number,
  inter: number,
): Float64Array {
  const tokens = x.length / hidden;
  const out = new Float64Array(tokens * hidden);
  const h = new Float64Array(inter);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < topK; j++) {
      const e = ids[t * topK + j], w = weights[t * topK + j];
      const gu = e * 2 * inter * hidden;
      for (let i = 0; i < inter; i++) {
        let g = 0, u = 0;
        for (let c = 0; c < hidden; c++) {
          g += gateUp[gu + i * hidden + c] * x[t * hidden + c];
          u += gateUp[gu + (inter + i) * hidden + c] * x[t * hidden + c];
        }
        h[i] = geluTanh(g) * u;
      }
      const d = e * hidden * inter;
      for (let o = 0; o < hidden; o++) {
        let y = 0;
        for (let i = 0; i < inter; i++) y += down[d + o * inter + i] * h[i];
        out[t * hidden + o] += w * y;
      }
    }
  }
  return out;
}

/** gk_logits_process: bias, then OpenAI's frequency/presence penalties over history[start, n), then the mask. */
export function logitsProcess(
  logits: Float32Array,
  state: Int32Array,
  history: Int32Array,
  p: { start: number; frequency: number; presence: number; bias: [number, number][]; allowed?: Uint32Array },
): void {
  if (state[STATE_DONE] !== 0) return;
  const vocab = logits.length;
  for (const [id, v] of p.bias) if (id >= 0 && id < vocab) logits[id] = f32(logits[id] + f32(v));
  const frequency = f32(p.frequency), presence = f32(p.presence);
  if (frequency !== 0 || presence !== 0) {
    const counts = new Map<number, number>();
    const end = Math.min(Math.max(state[STATE_HISTORY], 0), history.length);
    for (let j = p.start; j < end; j++) {
      const id = history[j];
      if (id >= 0 && id < vocab) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const [id, c] of counts) logits[id] = f32(logits[id] - fmaF32(c, frequency, presence));
  }
  if (p.allowed) {
    for (let i = 0; i < vocab; i++) if (!((p.allowed[i >> 5] >>> (i & 31)) & 1)) logits[i] = -Infinity;
  }
}

/** gk_logprobs: [sampled id, top ids...] and their log-softmax (f64 log-sum-exp), into row state[step] - 1. */
export function logprobs(
  logits: Float32Array,
  state: Int32Array,
  topN: number,
  ids: Int32Array,
  out: Float32Array,
): void {
  const slot = state[STATE_STEP] - 1, capacity = ids.length / (1 + topN);
  if (slot < 0 || slot >= capacity) return;
  const rank = (l: number) => (Number.isNaN(l) ? -Infinity : l);
  let m = -Infinity;
  for (const l of logits) m = Math.max(m, rank(l));
  let sum = 0;
  for (const l of logits) if (rank(l) !== -Infinity) sum += Math.exp(f32(rank(l) - m));
  const lse = m + Math.log(sum);
  const order = Array.from(logits, (_, i) => i).sort((a, b) => rank(logits[b]) - rank(logits[a]) || a - b);
  const row = [state[STATE_TOKEN], ...order.slice(0, topN)];
  row.forEach((id, k) => {
    ids[slot * (1 + topN) + k] = id;
    out[slot * (1 + topN) + k] = rank(logits[id]) - lse;
  });
}
