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
      const base = (!o.causal || j <= p) && (o.window === 0 || j > p - o.window);
      const span = o.spanIds !== null && o.spanIds[j] !== 0 && o.spanIds[j] === o.spanIds[p];
      if (base || span) visible.push(j);
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
