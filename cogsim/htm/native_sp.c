/* The spatial pooler's step with global inhibition on the CPU: the torch path's arithmetic, bit for
   bit (see cogsim/htm/native_sp.py for the data layout). Built by cogsim.native with -DCOGSIM_ABI. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "native_parallel.h"

#ifndef COGSIM_ABI
#error "build with -DCOGSIM_ABI=<n> (cogsim.native passes it)"
#endif

int cogsim_htm_sp_abi(void) { return COGSIM_ABI; }

typedef struct {
  int64_t S, C, I, W;            /* W = 64-bit words per input row of the connected bitsets */
  const uint8_t *x;              /* [S, I] input bits (bool) */
  float *perm;                   /* [S, C, I] permanences, NaN outside the potential pool */
  uint64_t *bits;                /* [S, I, W] connected synapses by input: column c = bit c mod 64 of word c / 64 */
  const float *boost;            /* [S, C] boost factors, NULL when boosting is off */
  float *overlap_duty, *active_duty;  /* [S, C] */
  float *min_overlap_duty;       /* [S, C] */
  const int64_t *n_desired;      /* [S] winners wanted before the stimulus threshold */
  int64_t *overlaps;             /* [S, C] out: connected synapses onto active inputs */
  uint8_t *active;               /* [S, C] out: winners (bool) */
  int64_t *bumped;               /* [S] out: columns bumped this step */
  int32_t learn, stimulus_threshold, update_min_duty;
  float connected, inc, dec, bump, duty_decay, duty_inc, min_pct_overlap_duty;
} sp_step_t;

typedef struct {
  int32_t *act, *win; uint64_t *cnt, *keys; int64_t *hist; float *before, *sel; uint8_t *flip;
} scratch_t;

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the overlap counters assume a little-endian machine"
#endif
/* SPREAD[b]: byte k = bit k of b, so adding SPREAD[row byte j] to the j-th 64-bit word of byte
   counters adds the row's bits 8j..8j+7 to the counters of columns 8j..8j+7 */
static uint64_t SPREAD[256];
static pthread_once_t spread_once = PTHREAD_ONCE_INIT;
static void spread_init(void) {
  for (int b = 0; b < 256; ++b) {
    uint64_t v = 0;
    for (int k = 0; k < 8; ++k) if ((b >> k) & 1) v |= (uint64_t)1 << (8 * k);
    SPREAD[b] = v;
  }
}

#define PREFETCH_ROWS 4
static inline void prefetch_row(float *p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 1, 0);
}

static void die_oom(void) { fputs("cogsim htm native sp: out of memory\n", stderr); abort(); }
static void *xmalloc(size_t n) { void *p = malloc(n ? n : 1); if (!p) die_oom(); return p; }

/* NAME(v, n, k): the k-th largest (1-based) of v[0..n) of type T (reorders v); Hoare partitions
   around a median of three */
#define DEFINE_KTH_LARGEST(NAME, T)                                                              \
  static T NAME(T *v, int64_t n, int64_t k) {                                                   \
    int64_t lo = 0, hi = n - 1, want = k - 1;                                                   \
    while (lo < hi) {                                                                           \
      T a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];                                        \
      T piv = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));            \
      int64_t i = lo, j = hi;                                                                   \
      while (i <= j) {                                                                          \
        while (v[i] > piv) ++i;                                                                 \
        while (v[j] < piv) --j;                                                                 \
        if (i <= j) { T t = v[i]; v[i] = v[j]; v[j] = t; ++i; --j; }                            \
      }                                                                                         \
      if (want <= j) hi = j; else if (want >= i) lo = i; else return v[want];                   \
    }                                                                                           \
    return v[want];                                                                             \
  }
DEFINE_KTH_LARGEST(kth_largest_u64, uint64_t)
DEFINE_KTH_LARGEST(kth_largest_f32, float)

/* monotone map of a float to uint32 (NaN largest, as in torch's descending sort; -0 == +0) */
static inline uint32_t float_key(float f) {
  if (f != f) return 0xFFFFFFFFu;
  if (f == 0.0f) f = 0.0f;
  uint32_t u; memcpy(&u, &f, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static inline float clamp01(float v) {  /* torch.clamp(v, 0, 1): NaN stays NaN */
  v = v < 0.0f ? 0.0f : v;
  return v > 1.0f ? 1.0f : v;
}

/* permanence updates of one column; each returns whether a synapse may have crossed the threshold,
   flip[i] marking those that did */
static int adapt_row(float *restrict p, const uint8_t *restrict x, uint8_t *restrict flip, int64_t I, float inc,
                     float dec, float th) {
  uint8_t any = 0;
  for (int64_t i = 0; i < I; ++i) {
    float b = p[i], v = clamp01(b + (x[i] ? inc : dec));
    uint8_t f = (uint8_t)((v >= th) != (b >= th));
    p[i] = v; flip[i] = f; any |= f;
  }
  return any;
}
static int add_row(float *restrict p, uint8_t *restrict flip, int64_t I, float inc, float th) {
  uint8_t any = 0;
  for (int64_t i = 0; i < I; ++i) {
    float b = p[i], v = clamp01(b + inc);
    uint8_t f = (uint8_t)((v >= th) != (b >= th));
    p[i] = v; flip[i] = f; any |= f;
  }
  return any;
}
static int diff_row(const float *restrict before, const float *restrict p, uint8_t *restrict flip, int64_t I,
                    float th) {
  uint8_t any = 0;
  for (int64_t i = 0; i < I; ++i) {
    uint8_t f = (uint8_t)((p[i] >= th) != (before[i] >= th));
    flip[i] = f; any |= f;
  }
  return any;
}
/* toggle column c's bit in the rows of the flipped inputs (sb: the stream's bitsets) */
static void apply_flips(uint64_t *sb, int64_t W, int64_t c, const uint8_t *flip, int64_t I) {
  uint64_t *col = sb + (c >> 6);
  const uint64_t bit = (uint64_t)1 << (c & 63);
  int64_t i = 0;
  for (; i + 8 <= I; i += 8) {
    uint64_t w; memcpy(&w, flip + i, 8);
    if (!w) continue;
    for (int k = 0; k < 8; ++k) if (flip[i + k]) col[(i + k) * W] ^= bit;
  }
  for (; i < I; ++i) if (flip[i]) col[i * W] ^= bit;
}

/* raise the column's permanences so that stimulus_threshold of them are connected (the torch path's
   _raise_to_threshold): + max(0, connected - (k-th largest)), k = min(#potential, threshold) */
static void raise_to_threshold(const sp_step_t *a, float *p, float *sel) {
  const int64_t I = a->I, th = a->stimulus_threshold;
  int64_t npot = 0, nconn = 0;
  for (int64_t i = 0; i < I; ++i) {
    float v = p[i];
    if (v == v) { sel[npot++] = v; nconn += v >= a->connected; }
  }
  int64_t k = npot < th ? npot : th;
  if (nconn >= th || k <= 0) return;
  float kth = kth_largest_f32(sel, npot, k);
  float inc = a->connected - kth;
  if (inc < 0.0f) inc = 0.0f;
  for (int64_t i = 0; i < I; ++i) p[i] = clamp01(p[i] + inc);
}


static void stream_step(const sp_step_t *a, int64_t s, scratch_t *w) {
  const int64_t C = a->C, I = a->I, W = a->W;
  const uint8_t *x = a->x + s * I;
  int64_t *ov = a->overlaps + s * C;
  uint8_t *active = a->active + s * C;
  uint64_t *bits = a->bits + s * I * W;
  /* overlaps: the active inputs' bit rows added into byte counters, 255 rows at a time */
  int64_t na = 0;
  for (int64_t i = 0; i < I; ++i) if (x[i]) w->act[na++] = (int32_t)i;
  memset(ov, 0, (size_t)C * sizeof(int64_t));
  for (int64_t b0 = 0; b0 < na; b0 += 255) {
    const int64_t b1 = na < b0 + 255 ? na : b0 + 255, nbytes = (C + 7) / 8;
    uint64_t *cnt = w->cnt;
    memset(cnt, 0, (size_t)nbytes * sizeof(uint64_t));
    int64_t j = b0;
    for (; j + 4 <= b1; j += 4) {  /* four rows per pass over the counters */
      const uint8_t *r0 = (const uint8_t *)(bits + w->act[j] * W);
      const uint8_t *r1 = (const uint8_t *)(bits + w->act[j + 1] * W);
      const uint8_t *r2 = (const uint8_t *)(bits + w->act[j + 2] * W);
      const uint8_t *r3 = (const uint8_t *)(bits + w->act[j + 3] * W);
      for (int64_t k = 0; k < nbytes; ++k) cnt[k] += (SPREAD[r0[k]] + SPREAD[r1[k]]) + (SPREAD[r2[k]] + SPREAD[r3[k]]);
    }
    for (; j < b1; ++j) {
      const uint8_t *row = (const uint8_t *)(bits + w->act[j] * W);
      for (int64_t k = 0; k < nbytes; ++k) cnt[k] += SPREAD[row[k]];
    }
    const uint8_t *cb = (const uint8_t *)cnt;
    for (int64_t c = 0; c < C; ++c) ov[c] += cb[c];
  }
  int64_t max_ov = 0;
  for (int64_t c = 0; c < C; ++c) max_ov = ov[c] > max_ov ? ov[c] : max_ov;
  /* global inhibition: the n largest (overlap, index) win (ties to the higher index), then the
     stimulus threshold; win[] lists the winners */
  const float *boost = a->boost ? a->boost + s * C : NULL;
  const int64_t n = a->n_desired[s];
  int32_t *win = w->win;
  int64_t nw = 0;
  if (n >= C) {
    for (int64_t c = 0; c < C; ++c) win[nw++] = (int32_t)c;
  } else if (n > 0 && !boost) {  /* integer overlaps: a histogram (4 interleaved copies) finds the cut */
    int64_t *hist = w->hist;
    const int64_t H = max_ov + 1;
    memset(hist, 0, (size_t)(4 * H) * sizeof(int64_t));
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
      hist[ov[c]]++; hist[H + ov[c + 1]]++; hist[2 * H + ov[c + 2]]++; hist[3 * H + ov[c + 3]]++;
    }
    for (; c < C; ++c) hist[ov[c]]++;
    int64_t v = max_ov, above = 0;
    for (;; --v) {
      const int64_t h = hist[v] + hist[H + v] + hist[2 * H + v] + hist[3 * H + v];
      if (above + h >= n) break;
      above += h;
    }
    int64_t take = n - above;  /* columns with overlap v, highest indices first */
    for (c = C - 1; c >= 0; --c) {
      if (ov[c] < v) continue;
      if (ov[c] > v) win[nw++] = (int32_t)c;
      else if (take > 0) { win[nw++] = (int32_t)c; --take; }
    }
  } else if (n > 0) {
    uint64_t *keys = w->keys;
    for (int64_t c = 0; c < C; ++c) keys[c] = ((uint64_t)float_key((float)ov[c] * boost[c]) << 32) | (uint64_t)c;
    const uint64_t cut = kth_largest_u64(keys, C, n);
    for (int64_t c = 0; c < C; ++c)
      if ((((uint64_t)float_key((float)ov[c] * boost[c]) << 32) | (uint64_t)c) >= cut) win[nw++] = (int32_t)c;
  }
  if (a->stimulus_threshold > 0 || boost) {  /* (a NaN boosted overlap fails any threshold) */
    const float thf = (float)a->stimulus_threshold;
    int64_t kept = 0;
    for (int64_t j = 0; j < nw; ++j) {
      const int64_t c = win[j];
      if (boost ? ((float)ov[c] * boost[c] >= thf) : (ov[c] >= a->stimulus_threshold)) win[kept++] = (int32_t)c;
    }
    nw = kept;
  }
  memset(active, 0, (size_t)C);
  for (int64_t j = 0; j < nw; ++j) active[win[j]] = 1;
  if (!a->learn) return;
  /* learning on the winners (their rows are scattered over a large buffer: prefetch ahead) */
  const float inc = a->inc, dec = -a->dec, th = a->connected;
  for (int64_t j = 0; j < nw && j < PREFETCH_ROWS; ++j) prefetch_row(a->perm + (s * C + win[j]) * I, I);
  for (int64_t j = 0; j < nw; ++j) {
    const int64_t c = win[j];
    if (j + PREFETCH_ROWS < nw) prefetch_row(a->perm + (s * C + win[j + PREFETCH_ROWS]) * I, I);
    float *p = a->perm + (s * C + c) * I;
    int crossed;
    if (a->stimulus_threshold > 0) {
      memcpy(w->before, p, (size_t)I * sizeof(float));
      adapt_row(p, x, w->flip, I, inc, dec, th);
      raise_to_threshold(a, p, w->sel);
      crossed = diff_row(w->before, p, w->flip, I, th);
    } else {
      crossed = adapt_row(p, x, w->flip, I, inc, dec, th);
    }
    if (crossed) apply_flips(bits, W, c, w->flip, I);
  }
  /* duty cycles */
  float *od = a->overlap_duty + s * C, *ad = a->active_duty + s * C;
  const float decay = a->duty_decay, dinc = a->duty_inc;
  for (int64_t c = 0; c < C; ++c) {
    float o = od[c] * decay, t = ad[c] * decay;
    od[c] = o + (ov[c] != 0 ? dinc : 0.0f);
    ad[c] = t + (active[c] ? dinc : 0.0f);
  }
  /* weak columns: all potential permanences + connected / 10 */
  const float *mod = a->min_overlap_duty + s * C;
  int64_t bumped = 0;
  for (int64_t c = 0; c < C; ++c) {
    if (!(od[c] < mod[c])) continue;
    if (add_row(a->perm + (s * C + c) * I, w->flip, I, a->bump, th)) apply_flips(bits, W, c, w->flip, I);
    ++bumped;
  }
  a->bumped[s] = bumped;
  /* every UPDATE_PERIOD steps: minimum overlap duty = pct * the stream's largest (global inhibition) */
  if (a->update_min_duty) {
    float top = od[0];
    for (int64_t c = 1; c < C; ++c) top = od[c] > top ? od[c] : top;
    const float m = a->min_pct_overlap_duty * top;
    float *md = a->min_overlap_duty + s * C;
    for (int64_t c = 0; c < C; ++c) md[c] = m;
  }
}

/* streams are handed out one at a time (a thread on a busy core does not hold the others up) */
typedef struct { const sp_step_t *a; int64_t next; } queue_t;

static void step_worker(const void *args, int64_t i0, int64_t i1) {
  (void)i0; (void)i1;
  queue_t *q = (queue_t *)args;
  const sp_step_t *a = q->a;
  scratch_t w;
  w.act = (int32_t *)xmalloc((size_t)a->I * sizeof(int32_t));
  w.cnt = (uint64_t *)xmalloc((size_t)(a->C + 7) / 8 * sizeof(uint64_t));
  w.keys = (uint64_t *)xmalloc((size_t)a->C * sizeof(uint64_t));
  w.hist = (int64_t *)xmalloc((size_t)(4 * (a->I + 1)) * sizeof(int64_t));
  w.before = (float *)xmalloc((size_t)a->I * sizeof(float));
  w.sel = (float *)xmalloc((size_t)a->I * sizeof(float));
  w.flip = (uint8_t *)xmalloc((size_t)a->I);
  w.win = (int32_t *)xmalloc((size_t)a->C * sizeof(int32_t));
  for (;;) {
    const int64_t s = __atomic_fetch_add(&q->next, 1, __ATOMIC_RELAXED);
    if (s >= a->S) break;
    stream_step(a, s, &w);
  }
  free(w.act); free(w.cnt); free(w.keys); free(w.hist); free(w.before); free(w.sel); free(w.flip); free(w.win);
}

void cogsim_htm_sp_step(const sp_step_t *a, int32_t nthreads) {
  pthread_once(&spread_once, spread_init);
  queue_t q = {a, 0};
  if (nthreads > a->S) nthreads = (int32_t)a->S;
  run_workers(step_worker, &q, nthreads);
}

static void bits_range(const void *args, int64_t s0, int64_t s1) {
  const sp_step_t *a = (const sp_step_t *)args;
  const int64_t C = a->C, I = a->I, W = a->W;
  for (int64_t s = s0; s < s1; ++s) {
    uint64_t *sb = a->bits + s * I * W;
    memset(sb, 0, (size_t)(I * W) * sizeof(uint64_t));
    for (int64_t c = 0; c < C; ++c) {
      const float *p = a->perm + (s * C + c) * I;
      for (int64_t i = 0; i < I; ++i) if (p[i] >= a->connected) sb[i * W + (c >> 6)] |= (uint64_t)1 << (c & 63);
    }
  }
}

/* the connected bitsets of every stream from the permanences */
void cogsim_htm_sp_bits(const sp_step_t *a, int32_t nthreads) {
  run_parallel_aligned(bits_range, a, a->S, nthreads, 1);
}
