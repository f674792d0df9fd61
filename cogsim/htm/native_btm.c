/* The backtracking temporal memory's kernel (cogsim/htm/backtracking_tm.py; the rules are in
   docs/design.md, "Backtracking temporal memory"): one stream at a time, streams over threads.

   Per stream: segments in a pool (synapses sorted by presynaptic cell, at most max_syn each), every
   cell's segment slots in order (a freed slot keeps its place and is reused first), and for every
   presynaptic cell the segments it reaches, so that a segment's active-synapse count is a walk over
   the active cells. The Python reference (cogsim/htm/backtracking_reference.py) makes the same
   decisions and draws the same random numbers; tests hold the two equal.

   Built by cogsim.native with -DCOGSIM_ABI. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "native_parallel.h"

#ifndef COGSIM_ABI
#error "build with -DCOGSIM_ABI=<n> (cogsim.native passes it)"
#endif

int cogsim_btm_abi(void) { return COGSIM_ABI; }

static void die_oom(void) { fputs("cogsim backtracking tm: out of memory\n", stderr); abort(); }
static void *xmalloc(size_t n) { void *q = malloc(n ? n : 1); if (!q) die_oom(); return q; }
static void *xcalloc(size_t n, size_t s) { void *q = calloc(n ? n : 1, s ? s : 1); if (!q) die_oom(); return q; }
static void *xgrow(void *p, size_t n) { void *q = realloc(p, n ? n : 1); if (!q) die_oom(); return q; }

/* ---- growable int32 array ---- */
typedef struct { int32_t *p; int32_t n, cap; } vec_t;
static void vec_need(vec_t *v, int64_t need) {
  if (need <= v->cap) return;
  int64_t cap = v->cap ? v->cap : 4;
  while (cap < need) cap += cap >> 1;
  if (cap > 0x7FFFFFF0) die_oom();
  v->p = (int32_t *)xgrow(v->p, (size_t)cap * 4); v->cap = (int32_t)cap;
}
static inline void vec_push(vec_t *v, int32_t x) { if (v->n == v->cap) vec_need(v, (int64_t)v->n + 1); v->p[v->n++] = x; }
static inline void vec_remove(vec_t *v, int32_t x) {  /* order not kept */
  for (int32_t i = 0; i < v->n; ++i) if (v->p[i] == x) { v->p[i] = v->p[--v->n]; return; }
}

/* ---- a set of cells: members in insertion order plus a bitmap ---- */
typedef struct { vec_t on; uint64_t *bits; } cellset_t;
static inline int cs_has(const cellset_t *s, int64_t c) { return (int)((s->bits[c >> 6] >> (c & 63)) & 1u); }
static inline void cs_add(cellset_t *s, int32_t c) {
  uint64_t m = (uint64_t)1 << (c & 63);
  if (s->bits[c >> 6] & m) return;
  s->bits[c >> 6] |= m; vec_push(&s->on, c);
}
static inline void cs_clear(cellset_t *s) {
  for (int32_t i = 0; i < s->on.n; ++i) s->bits[s->on.p[i] >> 6] = 0;
  s->on.n = 0;
}
static void cs_copy(cellset_t *dst, const cellset_t *src) {
  cs_clear(dst);
  vec_need(&dst->on, src->on.n);
  for (int32_t i = 0; i < src->on.n; ++i) { int32_t c = src->on.p[i]; dst->bits[c >> 6] |= (uint64_t)1 << (c & 63); }
  memcpy(dst->on.p, src->on.p, (size_t)src->on.n * 4); dst->on.n = src->on.n;
}

/* ---- the random generator (splitmix64; the reference draws the same numbers) ---- */
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static inline uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)((rng_next(s) >> 32) % n); }

/* ---- parameters ---- */
typedef struct {
  int32_t columns, cells_per_column, activation_threshold, min_threshold, new_synapse_count,
          max_segments_per_cell, max_synapses_per_segment, pam_length, max_inf_backtrack, max_lrn_backtrack,
          max_seq_length, streams;
  float initial_permanence, connected_permanence, permanence_increment, permanence_decrement, permanence_max;
  int64_t seed;
} btm_params;

/* duty-cycle tiers and rates (NuPIC's Segment) */
static const int64_t TIERS[] = {0, 100, 320, 1000, 3200, 10000, 32000, 100000, 320000};
static const float ALPHAS[] = {0.0f, 0.0032f, 0.0010f, 0.00032f, 0.00010f, 0.000032f, 0.000010f, 0.0000032f, 0.0000010f};
#define NTIERS 9

/* a queued change to one segment (or a new one when seg < 0), applied if its column turns on next */
typedef struct { int32_t cell, seg; int64_t uid, stamp; int32_t off, n; } update_t;

/* recent inputs: up to `cap` lists of active columns, oldest first */
typedef struct { int32_t *cols, *len; int32_t n, cap, width; } history_t;

typedef struct {
  /* segments */
  int32_t nseg, cap_seg; vec_t free_seg; int64_t live, next_uid;
  int32_t *seg_cell, *seg_slot, *seg_pos, *seg_tot, *src; uint16_t *seg_n; int64_t *seg_uid, *seg_dc_iter;
  float *perm, *seg_dc; uint16_t *cnt;  /* cnt: propagate's counts */
  vec_t *cell_slots, *out;  /* per cell: its segment slots (-1: freed); per presynaptic cell: segments */
  /* inference */
  cellset_t inf_act, inf_pred, inf_pred1, act_backup, pred_backup;
  uint8_t *conf_col; vec_t conf_on;    /* columns with confidence > 0 after the last step */
  uint8_t *pred_col;                   /* scratch: columns with a predicted cell */
  history_t inf_hist;
  /* learning */
  cellset_t lrn_act, lrn_act1, lrn_pred, lrn_pred1;
  history_t lrn_hist;
  update_t *upd; int32_t nupd, cap_upd; vec_t upd_src;
  int32_t pam, seq_len, reset_called;
  int64_t lrn_iter, iter;
  float avg_density;
  uint64_t rng;
  /* scratch */
  vec_t cand, acol, tmp, tmp2, touched, sorted; int32_t *best_seg; uint8_t *col_on;
} bstream_t;

typedef struct {
  int32_t S, C, K; int64_t N;
  int32_t act_th, min_th, new_syn, max_seg, max_syn, pam_len, max_inf_bt, max_lrn_bt, max_seq;
  float init, conn, inc, dec, pmax;
  int64_t seed;
  bstream_t *st;
} btm_t;

static void cs_init(cellset_t *s, int64_t n) { memset(s, 0, sizeof *s); s->bits = (uint64_t *)xcalloc((size_t)((n + 63) / 64), 8); }
static void cs_free(cellset_t *s) { free(s->on.p); free(s->bits); }

static void hist_init(history_t *h, int32_t cap, int32_t width) {
  h->cap = cap; h->width = width; h->n = 0;
  h->cols = (int32_t *)xmalloc((size_t)(cap > 0 ? cap : 1) * (size_t)width * 4);
  h->len = (int32_t *)xcalloc((size_t)(cap > 0 ? cap : 1), 4);
}
static void hist_pop_front(history_t *h, int32_t k) {
  if (k <= 0) return;
  if (k >= h->n) { h->n = 0; return; }
  memmove(h->cols, h->cols + (size_t)k * h->width, (size_t)(h->n - k) * h->width * 4);
  memmove(h->len, h->len + k, (size_t)(h->n - k) * 4);
  h->n -= k;
}
/* keep at most `limit` + 1 entries after the push, as NuPIC's deque does */
static void hist_push(history_t *h, const int32_t *cols, int32_t n, int32_t limit) {
  if (h->n > limit) hist_pop_front(h, 1);
  memcpy(h->cols + (size_t)h->n * h->width, cols, (size_t)n * 4);
  h->len[h->n++] = n;
}
static inline const int32_t *hist_at(const history_t *h, int32_t i) { return h->cols + (size_t)i * h->width; }

static void stream_init(const btm_t *tm, bstream_t *st, int32_t s) {
  memset(st, 0, sizeof *st);
  st->cell_slots = (vec_t *)xcalloc((size_t)tm->N, sizeof(vec_t));
  st->out = (vec_t *)xcalloc((size_t)tm->N, sizeof(vec_t));
  cellset_t *sets[] = {&st->inf_act, &st->inf_pred, &st->inf_pred1, &st->act_backup, &st->pred_backup,
                       &st->lrn_act, &st->lrn_act1, &st->lrn_pred, &st->lrn_pred1};
  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; ++i) cs_init(sets[i], tm->N);
  st->conf_col = (uint8_t *)xcalloc((size_t)tm->C, 1);
  st->pred_col = (uint8_t *)xcalloc((size_t)tm->C, 1);
  st->col_on = (uint8_t *)xcalloc((size_t)tm->C, 1);
  st->best_seg = (int32_t *)xmalloc((size_t)tm->C * 4);
  for (int32_t c = 0; c < tm->C; ++c) st->best_seg[c] = -1;
  hist_init(&st->inf_hist, tm->max_inf_bt + 1, tm->C);
  hist_init(&st->lrn_hist, tm->max_lrn_bt + 1, tm->C);
  st->pam = tm->pam_len;
  st->rng = (uint64_t)(tm->seed + s);
}

static void stream_free(const btm_t *tm, bstream_t *st) {
  for (int64_t c = 0; c < tm->N; ++c) { free(st->cell_slots[c].p); free(st->out[c].p); }
  free(st->cell_slots); free(st->out);
  cellset_t *sets[] = {&st->inf_act, &st->inf_pred, &st->inf_pred1, &st->act_backup, &st->pred_backup,
                       &st->lrn_act, &st->lrn_act1, &st->lrn_pred, &st->lrn_pred1};
  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; ++i) cs_free(sets[i]);
  free(st->conf_col); free(st->pred_col); free(st->col_on); free(st->best_seg); free(st->conf_on.p);
  free(st->inf_hist.cols); free(st->inf_hist.len); free(st->lrn_hist.cols); free(st->lrn_hist.len);
  free(st->seg_cell); free(st->seg_slot); free(st->seg_pos); free(st->seg_tot); free(st->src); free(st->seg_n);
  free(st->seg_uid); free(st->seg_dc_iter); free(st->perm); free(st->seg_dc); free(st->cnt); free(st->free_seg.p);
  free(st->upd); free(st->upd_src.p);
  free(st->cand.p); free(st->acol.p); free(st->tmp.p); free(st->tmp2.p); free(st->touched.p); free(st->sorted.p);
}

/* ---- segments ---- */
static int32_t seg_alloc(const btm_t *tm, bstream_t *st) {
  if (st->free_seg.n) return st->free_seg.p[--st->free_seg.n];
  if (st->nseg == st->cap_seg) {
    int64_t cap = (int64_t)st->cap_seg + (st->cap_seg >> 1) + 256;
    if (cap > 0x7FFFFFF0 / (tm->max_syn > 0 ? tm->max_syn : 1)) die_oom();
    size_t c = (size_t)cap, w = (size_t)tm->max_syn;
    st->seg_cell = (int32_t *)xgrow(st->seg_cell, c * 4); st->seg_slot = (int32_t *)xgrow(st->seg_slot, c * 4);
    st->seg_pos = (int32_t *)xgrow(st->seg_pos, c * 4); st->seg_tot = (int32_t *)xgrow(st->seg_tot, c * 4);
    st->seg_n = (uint16_t *)xgrow(st->seg_n, c * 2); st->seg_uid = (int64_t *)xgrow(st->seg_uid, c * 8);
    st->seg_dc_iter = (int64_t *)xgrow(st->seg_dc_iter, c * 8); st->seg_dc = (float *)xgrow(st->seg_dc, c * 4);
    st->src = (int32_t *)xgrow(st->src, c * w * 4); st->perm = (float *)xgrow(st->perm, c * w * 4);
    st->cnt = (uint16_t *)xgrow(st->cnt, c * 2);
    st->cap_seg = (int32_t)cap;
  }
  return st->nseg++;
}

/* NuPIC's positive-activation duty cycle, updated in place unless it is already current */
static float duty_cycle(bstream_t *st, int32_t g, int64_t iteration, int active) {
  if (iteration <= 0) return st->seg_dc[g];
  if (iteration <= TIERS[1]) {
    float dc = (float)st->seg_pos[g] / (float)iteration;
    st->seg_dc_iter[g] = iteration; st->seg_dc[g] = dc;
    return dc;
  }
  int64_t age = iteration - st->seg_dc_iter[g];
  if (age == 0 && !active) return st->seg_dc[g];
  float alpha = 0.0f;
  for (int t = NTIERS - 1; t > 0; --t) if (iteration > TIERS[t]) { alpha = ALPHAS[t]; break; }
  float dc = (float)(pow(1.0 - (double)alpha, (double)age) * (double)st->seg_dc[g]);
  if (active) dc += alpha;
  st->seg_dc[g] = dc; st->seg_dc_iter[g] = iteration;
  return dc;
}

/* a new segment on `cell` with synapses to `srcs` (sorted, distinct) at the initial permanence */
static int32_t seg_create(const btm_t *tm, bstream_t *st, int32_t cell, const int32_t *srcs, int32_t n) {
  int32_t g = seg_alloc(tm, st);
  vec_t *slots = &st->cell_slots[cell];
  int32_t slot = -1;
  for (int32_t i = 0; i < slots->n; ++i) if (slots->p[i] < 0) { slot = i; break; }
  if (slot < 0) { slot = slots->n; vec_push(slots, g); } else slots->p[slot] = g;
  st->seg_cell[g] = cell; st->seg_slot[g] = slot; st->seg_uid[g] = st->next_uid++;
  st->seg_pos[g] = 1; st->seg_tot[g] = 1;
  st->seg_dc[g] = 1.0f / (float)(st->lrn_iter > 0 ? st->lrn_iter : 1); st->seg_dc_iter[g] = st->lrn_iter;
  if (n > tm->max_syn) n = tm->max_syn;
  int32_t *sp = st->src + (size_t)g * tm->max_syn;
  float *pp = st->perm + (size_t)g * tm->max_syn;
  for (int32_t j = 0; j < n; ++j) { sp[j] = srcs[j]; pp[j] = tm->init; vec_push(&st->out[srcs[j]], g); }
  st->seg_n[g] = (uint16_t)n;
  st->live++;
  return g;
}

static void seg_release(const btm_t *tm, bstream_t *st, int32_t g) {
  const int32_t *sp = st->src + (size_t)g * tm->max_syn;
  for (int32_t j = 0; j < st->seg_n[g]; ++j) vec_remove(&st->out[sp[j]], g);
  st->cell_slots[st->seg_cell[g]].p[st->seg_slot[g]] = -1;
  st->seg_cell[g] = -1; st->seg_n[g] = 0; st->live--;
  vec_push(&st->free_seg, g);
}

/* connected active synapses reach the activation threshold */
static int seg_active(const btm_t *tm, const bstream_t *st, int32_t g, const cellset_t *act) {
  const int32_t *sp = st->src + (size_t)g * tm->max_syn;
  const float *pp = st->perm + (size_t)g * tm->max_syn;
  int32_t n = st->seg_n[g], a = 0;
  if (n < tm->act_th) return 0;
  for (int32_t j = 0; j < n && a < tm->act_th; ++j) a += (pp[j] >= tm->conn) & cs_has(act, sp[j]);
  return a >= tm->act_th;
}

/* count every segment's synapses (any permanence) onto the cells of `act`; st->cand gets the
   segments whose count reaches `thr` (count_of gives the count) */
static void propagate(bstream_t *st, const cellset_t *act, int32_t thr) {
  uint16_t *cnt = st->cnt;
  memset(cnt, 0, (size_t)st->nseg * sizeof *cnt);
  const uint16_t floor_ = (uint16_t)(thr > 1 ? thr : 1);
  st->cand.n = 0;
  for (int32_t a = 0; a < act->on.n; ++a) {
    const vec_t *o = &st->out[act->on.p[a]];
    const int32_t *p = o->p;
    for (int32_t e = 0, n = o->n; e < n; ++e) {
      int32_t g = p[e];
      if (++cnt[g] == floor_) vec_push(&st->cand, g);
    }
  }
}
static inline int32_t count_of(const bstream_t *st, int32_t g) { return (int32_t)st->cnt[g]; }

/* per column, the best candidate segment (most active, then the higher cell, then the lower slot);
   the columns touched are listed in st->touched */
static void best_per_column(const btm_t *tm, bstream_t *st) {
  for (int32_t i = 0; i < st->touched.n; ++i) st->best_seg[st->touched.p[i]] = -1;
  st->touched.n = 0;
  for (int32_t i = 0; i < st->cand.n; ++i) {
    int32_t g = st->cand.p[i], cell = st->seg_cell[g], col = cell / tm->K, b = st->best_seg[col];
    if (b < 0) { st->best_seg[col] = g; vec_push(&st->touched, col); continue; }
    int32_t ag = count_of(st, g), ab = count_of(st, b);
    if (ag > ab || (ag == ab && (cell > st->seg_cell[b] || (cell == st->seg_cell[b] && st->seg_slot[g] < st->seg_slot[b]))))
      st->best_seg[col] = g;
  }
}

/* the first cell of `set` in column `col`, or -1 */
static inline int32_t cell_in_column(const btm_t *tm, const cellset_t *set, int32_t col) {
  for (int32_t k = 0; k < tm->K; ++k) if (cs_has(set, (int64_t)col * tm->K + k)) return col * tm->K + k;
  return -1;
}

/* ---- inference ---- */
static int infer_phase1(const btm_t *tm, bstream_t *st, const int32_t *cols, int32_t ncols, int start_cells) {
  cs_clear(&st->inf_act);
  int32_t predicted = 0;
  for (int32_t i = 0; i < ncols; ++i) {
    int32_t c0 = cols[i] * tm->K;
    if (start_cells) { cs_add(&st->inf_act, c0); continue; }
    int any = 0;
    for (int32_t k = 0; k < tm->K; ++k) if (cs_has(&st->inf_pred1, c0 + k)) { cs_add(&st->inf_act, c0 + k); any = 1; }
    if (any) predicted++;
    else for (int32_t k = 0; k < tm->K; ++k) cs_add(&st->inf_act, c0 + k);
  }
  return start_cells || (double)predicted >= 0.5 * (double)ncols;
}

static int infer_phase2(const btm_t *tm, bstream_t *st) {
  propagate(st, &st->inf_act, tm->act_th);
  cs_clear(&st->inf_pred);
  for (int32_t i = 0; i < st->conf_on.n; ++i) st->conf_col[st->conf_on.p[i]] = 0;
  st->conf_on.n = 0;
  st->tmp.n = 0;  /* predicted columns */
  for (int32_t i = 0; i < st->cand.n; ++i) {
    int32_t g = st->cand.p[i], cell = st->seg_cell[g], col = cell / tm->K;
    if (!st->conf_col[col]) { st->conf_col[col] = 1; vec_push(&st->conf_on, col); }  /* duty cycles stay > 0 */
    if (seg_active(tm, st, g, &st->inf_act)) {
      cs_add(&st->inf_pred, cell);
      if (!st->pred_col[col]) { st->pred_col[col] = 1; vec_push(&st->tmp, col); }
    }
  }
  int32_t npred = st->tmp.n;
  for (int32_t i = 0; i < npred; ++i) st->pred_col[st->tmp.p[i]] = 0;
  return (double)npred >= 0.5 * (double)st->avg_density;
}

static void infer_backtrack(const btm_t *tm, bstream_t *st) {
  history_t *h = &st->inf_hist;
  if (h->n == 0) return;
  cs_copy(&st->act_backup, &st->inf_act);
  cs_copy(&st->pred_backup, &st->inf_pred1);
  int32_t cand = -1, nbad = 0, start;
  for (start = 0; start < h->n; ++start) {
    int in_seq = 0;
    for (int32_t off = start; off < h->n; ++off) {
      cs_copy(&st->inf_pred1, &st->inf_pred);
      in_seq = infer_phase1(tm, st, hist_at(h, off), h->len[off], off == start);
      if (!in_seq) break;
      in_seq = infer_phase2(tm, st);
      if (!in_seq) break;
    }
    if (!in_seq) { nbad++; continue; }  /* bad starts are exactly 0 .. start-1 */
    cand = start;
    break;
  }
  if (cand < 0) { cs_copy(&st->inf_act, &st->act_backup); infer_phase2(tm, st); }
  /* drop the useless patterns at the head: the bad starts and everything up to the one chosen */
  hist_pop_front(h, cand >= 0 ? cand + 1 : nbad);
  cs_copy(&st->inf_pred1, &st->pred_backup);
}

static void update_inference(const btm_t *tm, bstream_t *st, const int32_t *cols, int32_t ncols) {
  cs_copy(&st->inf_pred1, &st->inf_pred);
  if (tm->max_inf_bt > 0) hist_push(&st->inf_hist, cols, ncols, tm->max_inf_bt);
  if (!infer_phase1(tm, st, cols, ncols, st->reset_called)) { infer_backtrack(tm, st); return; }
  if (!infer_phase2(tm, st)) infer_backtrack(tm, st);
}

/* ---- learning ---- */
static int cmp_i32(const void *a, const void *b) { int32_t x = *(const int32_t *)a, y = *(const int32_t *)b; return (x > y) - (x < y); }
static void sort_i32(int32_t *p, int32_t n) {
  if (n > 32) { qsort(p, (size_t)n, 4, cmp_i32); return; }
  for (int32_t i = 1; i < n; ++i) { int32_t x = p[i], j = i; while (j > 0 && p[j - 1] > x) { p[j] = p[j - 1]; --j; } p[j] = x; }
}
/* the cells of `state`, ascending, into out */
static void sorted_cells(const cellset_t *state, vec_t *out) {
  vec_need(out, state->on.n);
  memcpy(out->p, state->on.p, (size_t)state->on.n * 4);
  out->n = state->on.n;
  sort_i32(out->p, out->n);
}

/* The synapses a segment update names, appended to st->upd_src: the segment's synapses onto `state`
   and, up to new_syn in all, cells of `state` drawn at random among those it has no synapse to
   (`sorted`: the cells of `state`, ascending). Returns how many (0: no update). */
static int32_t compute_update(const btm_t *tm, bstream_t *st, int32_t g, const cellset_t *state, const vec_t *sorted) {
  vec_t *u = &st->upd_src;
  int32_t base = u->n;
  const int32_t *sp = g >= 0 ? st->src + (size_t)g * tm->max_syn : NULL;
  int32_t ns = g >= 0 ? st->seg_n[g] : 0;
  for (int32_t j = 0; j < ns; ++j) if (cs_has(state, sp[j])) vec_push(u, sp[j]);
  int32_t want = tm->new_syn - (u->n - base);
  if (want > 0) {
    vec_need(&st->tmp2, sorted->n);
    int32_t m = 0;  /* the state's cells the segment has no synapse to (both lists ascending) */
    for (int32_t i = 0, j = 0; i < sorted->n; ++i) {
      int32_t c = sorted->p[i];
      while (j < ns && sp[j] < c) ++j;
      if (j < ns && sp[j] == c) continue;
      st->tmp2.p[m++] = c;
    }
    if (m > 0) {
      int32_t *pool = st->tmp2.p;
      if (m <= want) for (int32_t i = 0; i < m; ++i) vec_push(u, pool[i]);
      else if (want == 1) vec_push(u, pool[rng_below(&st->rng, (uint32_t)m)]);
      else {
        for (int32_t i = 0; i < want; ++i) {  /* partial Fisher-Yates */
          int32_t j = i + (int32_t)rng_below(&st->rng, (uint32_t)(m - i));
          int32_t t = pool[i]; pool[i] = pool[j]; pool[j] = t;
          vec_push(u, pool[i]);
        }
      }
      sort_i32(u->p + base, u->n - base);
    }
  }
  return u->n - base;
}

/* apply an update to an existing segment: +inc on its synapses the update names, -dec on the
   others (dropping those at 0), the weakest dropped to make room, then the new synapses */
static void adapt_existing(const btm_t *tm, bstream_t *st, int32_t g, const int32_t *names, int32_t nn) {
  st->seg_pos[g]++;
  duty_cycle(st, g, st->lrn_iter, 1);
  int32_t *sp = st->src + (size_t)g * tm->max_syn;
  float *pp = st->perm + (size_t)g * tm->max_syn;
  int32_t n = st->seg_n[g], m = 0;
  /* walk the two ascending lists: named synapses go up, the rest down */
  uint8_t named[1024];
  int32_t j = 0;
  for (int32_t i = 0; i < n; ++i) {
    while (j < nn && names[j] < sp[i]) ++j;
    named[i] = (uint8_t)(j < nn && names[j] == sp[i]);
  }
  for (int32_t i = 0; i < n; ++i) {
    float p;
    if (named[i]) { p = pp[i] + tm->inc; if (p > tm->pmax) p = tm->pmax; }
    else {
      p = pp[i] - tm->dec; if (p > tm->pmax) p = tm->pmax;
      if (p <= 0.0f) { vec_remove(&st->out[sp[i]], g); continue; }
    }
    sp[m] = sp[i]; pp[m] = p; named[m] = named[i]; ++m;
  }
  n = m;
  /* the names with no synapse yet */
  st->tmp.n = 0;
  for (int32_t a = 0, i = 0; a < nn; ++a) {
    while (i < n && sp[i] < names[a]) ++i;
    if (i < n && sp[i] == names[a]) continue;
    vec_push(&st->tmp, names[a]);
  }
  int32_t nadd = st->tmp.n;
  if (n + nadd > tm->max_syn) {
    int32_t free_n = n + nadd - tm->max_syn;
    if (free_n > n) free_n = n;
    /* unnamed synapses first (weakest first), then named ones; ties by position */
    for (int32_t r = 0; r < free_n; ++r) {
      int32_t worst = -1; float wk = 0.0f;
      for (int32_t i = 0; i < n; ++i) {
        if (sp[i] < 0) continue;
        float key = pp[i] + (named[i] ? tm->pmax : 0.0f);
        if (worst < 0 || key < wk) { worst = i; wk = key; }
      }
      vec_remove(&st->out[sp[worst]], g);
      sp[worst] = -1;
    }
    m = 0;
    for (int32_t i = 0; i < n; ++i) if (sp[i] >= 0) { sp[m] = sp[i]; pp[m] = pp[i]; ++m; }
    n = m;
    if (nadd > tm->max_syn - n) nadd = tm->max_syn - n;
  }
  /* merge the new synapses in, keeping the presynaptic order */
  if (nadd > 0) {
    int32_t i = n - 1, a = nadd - 1, w = n + nadd - 1;
    while (a >= 0) {
      if (i >= 0 && sp[i] > st->tmp.p[a]) { sp[w] = sp[i]; pp[w] = pp[i]; --i; }
      else { sp[w] = st->tmp.p[a]; pp[w] = tm->init; vec_push(&st->out[st->tmp.p[a]], g); --a; }
      --w;
    }
    n += nadd;
  }
  st->seg_n[g] = (uint16_t)n;
  if (n == 0) seg_release(tm, st, g);
}

/* NuPIC's getCellForNewSegment: a random non-start cell below the segment limit, else the cell of
   the column's least used segment, which is freed */
static int32_t cell_for_new_segment(const btm_t *tm, bstream_t *st, int32_t col) {
  int32_t c0 = col * tm->K, lo = tm->K > 1 ? 1 : 0, hi = tm->K - 1;
  st->tmp.n = 0;
  for (int32_t k = lo; k <= hi; ++k) if (st->cell_slots[c0 + k].n < tm->max_seg) vec_push(&st->tmp, c0 + k);
  if (st->tmp.n) return st->tmp.p[rng_below(&st->rng, (uint32_t)st->tmp.n)];
  int32_t best = -1, best_cell = c0 + lo; float best_dc = 1.0f;
  for (int32_t k = lo; k <= hi; ++k) {
    const vec_t *slots = &st->cell_slots[c0 + k];
    for (int32_t i = 0; i < slots->n; ++i) {
      int32_t g = slots->p[i];
      if (g < 0) continue;
      float dc = duty_cycle(st, g, st->lrn_iter, 0);
      if (dc < best_dc) { best_dc = dc; best = g; best_cell = c0 + k; }
    }
  }
  if (best >= 0) {
    for (int32_t u = 0; u < st->nupd; ++u) if (st->upd[u].seg == best) st->upd[u].seg = -2;  /* dropped */
    seg_release(tm, st, best);
  }
  return best_cell;
}

static int learn_phase1(const btm_t *tm, bstream_t *st, const int32_t *cols, int32_t ncols, int read_only) {
  cs_clear(&st->lrn_act);
  int32_t unpredicted = 0, matched = 0;
  for (int32_t i = 0; i < ncols; ++i) {
    int32_t col = cols[i], p = cell_in_column(tm, &st->lrn_pred1, col);
    if (p >= 0) { cs_add(&st->lrn_act, p); continue; }
    unpredicted++;
    if (read_only) continue;
    if (!matched) {  /* the best matching segments, needed only once a column is unpredicted */
      propagate(st, &st->lrn_act1, tm->min_th); best_per_column(tm, st); sorted_cells(&st->lrn_act1, &st->sorted);
      matched = 1;
    }
    int32_t g = st->best_seg[col];
    if (g >= 0 && count_of(st, g) >= tm->min_th) {
      cs_add(&st->lrn_act, st->seg_cell[g]);
      st->upd_src.n = 0;
      int32_t n = compute_update(tm, st, g, &st->lrn_act1, &st->sorted);
      st->seg_tot[g]++;
      if (n) adapt_existing(tm, st, g, st->upd_src.p, n);
    } else {
      int32_t cell = cell_for_new_segment(tm, st, col);
      cs_add(&st->lrn_act, cell);
      st->upd_src.n = 0;
      int32_t n = compute_update(tm, st, -1, &st->lrn_act1, &st->sorted);
      if (n) seg_create(tm, st, cell, st->upd_src.p, n);
    }
  }
  return unpredicted < ncols / 2;
}

static void learn_phase2(const btm_t *tm, bstream_t *st, int read_only) {
  propagate(st, &st->lrn_act, tm->act_th);
  best_per_column(tm, st);
  qsort(st->touched.p, (size_t)st->touched.n, 4, cmp_i32);  /* columns in order: the random draws follow it */
  cs_clear(&st->lrn_pred);
  if (!read_only) sorted_cells(&st->lrn_act, &st->sorted);
  for (int32_t i = 0; i < st->touched.n; ++i) {
    int32_t col = st->touched.p[i], g = st->best_seg[col];
    if (g < 0 || count_of(st, g) < tm->act_th) continue;
    cs_add(&st->lrn_pred, st->seg_cell[g]);
    if (read_only) continue;
    if (st->nupd == st->cap_upd) {
      st->cap_upd = st->cap_upd * 2 + 64; st->upd = (update_t *)xgrow(st->upd, (size_t)st->cap_upd * sizeof(update_t));
    }
    int32_t off = st->upd_src.n, n = compute_update(tm, st, g, &st->lrn_act, &st->sorted);
    st->seg_tot[g]++;
    if (n) st->upd[st->nupd++] = (update_t){st->seg_cell[g], g, st->seg_uid[g], st->lrn_iter, off, n};
    else st->upd_src.n = off;
  }
}

/* apply the queued updates whose column is on now (and not expired); the queue is emptied */
static void process_updates(const btm_t *tm, bstream_t *st, const int32_t *cols, int32_t ncols) {
  if (!st->nupd) { st->upd_src.n = 0; return; }
  for (int32_t i = 0; i < ncols; ++i) st->col_on[cols[i]] = 1;
  for (int32_t u = 0; u < st->nupd; ++u) {
    const update_t *up = &st->upd[u];
    if (st->lrn_iter - up->stamp > 1 || !st->col_on[up->cell / tm->K]) continue;
    if (up->seg < 0 || st->seg_cell[up->seg] != up->cell || st->seg_uid[up->seg] != up->uid) continue;
    adapt_existing(tm, st, up->seg, st->upd_src.p + up->off, up->n);
  }
  for (int32_t i = 0; i < ncols; ++i) st->col_on[cols[i]] = 0;
  st->nupd = 0; st->upd_src.n = 0;
}

static void start_cells(const btm_t *tm, cellset_t *set, const int32_t *cols, int32_t ncols) {
  cs_clear(set);
  for (int32_t i = 0; i < ncols; ++i) cs_add(set, cols[i] * tm->K);
}

static int learn_backtrack_from(const btm_t *tm, bstream_t *st, int32_t start, int read_only) {
  history_t *h = &st->lrn_hist;
  const int32_t cur = h->n - 1;
  if (!read_only) { st->nupd = 0; st->upd_src.n = 0; }
  int in_seq = 1;
  for (int32_t off = start; off < h->n; ++off) {
    cs_copy(&st->lrn_act1, &st->lrn_act);
    cs_copy(&st->lrn_pred1, &st->lrn_pred);
    if (!read_only) process_updates(tm, st, hist_at(h, off), h->len[off]);
    if (off == start) { start_cells(tm, &st->lrn_act, hist_at(h, off), h->len[off]); in_seq = 1; }
    else in_seq = learn_phase1(tm, st, hist_at(h, off), h->len[off], read_only);
    if (!in_seq || off == cur) break;
    learn_phase2(tm, st, read_only);
  }
  return in_seq;
}

static int32_t learn_backtrack(const btm_t *tm, bstream_t *st) {
  history_t *h = &st->lrn_hist;
  int32_t nprev = h->n > 0 ? h->n - 1 : 0;
  if (nprev <= 0) return 0;
  int32_t start;
  int in_seq = 0;
  for (start = 0; start < nprev; ++start) if ((in_seq = learn_backtrack_from(tm, st, start, 1))) break;
  if (!in_seq) { h->n = 0; return 0; }
  learn_backtrack_from(tm, st, start, 0);
  hist_pop_front(h, start + 1);
  return nprev - start;
}

static void update_learning(const btm_t *tm, bstream_t *st, const int32_t *cols, int32_t ncols) {
  cs_copy(&st->lrn_act1, &st->lrn_act);
  cs_copy(&st->lrn_pred1, &st->lrn_pred);
  if (tm->max_lrn_bt > 0) hist_push(&st->lrn_hist, cols, ncols, tm->max_lrn_bt);
  process_updates(tm, st, cols, ncols);
  if (st->pam > 0) st->pam--;
  st->seq_len++;
  if (!st->reset_called && learn_phase1(tm, st, cols, ncols, 0)) st->pam = tm->pam_len;
  if (st->reset_called || st->pam == 0 || (tm->max_seq != 0 && st->seq_len >= tm->max_seq)) {
    int32_t back = st->reset_called ? 0 : learn_backtrack(tm, st);
    if (st->reset_called || back == 0) { start_cells(tm, &st->lrn_act, cols, ncols); st->lrn_hist.n = 0; }
    st->pam = tm->pam_len; st->seq_len = back;
    st->nupd = 0; st->upd_src.n = 0;
  }
  learn_phase2(tm, st, 0);
}

/* ---- one step of one stream: `cols` ascending, n of them; returns the raw anomaly ---- */
static float stream_step(const btm_t *tm, bstream_t *st, const int32_t *cols, int32_t n, int learn) {
  int32_t hit = 0;
  for (int32_t i = 0; i < n; ++i) hit += st->conf_col[cols[i]];
  const float anomaly = n ? (float)(n - hit) / (float)n : 0.0f;
  if (learn) {
    st->lrn_iter++;
    for (int t = 0; t < NTIERS; ++t)
      if (st->lrn_iter == TIERS[t])
        for (int32_t g = 0; g < st->nseg; ++g) if (st->seg_cell[g] >= 0) duty_cycle(st, g, st->lrn_iter, 0);
  }
  st->iter++;
  st->avg_density = st->avg_density == 0.0f ? (float)n : 0.99f * st->avg_density + 0.01f * (float)n;
  update_inference(tm, st, cols, n);
  if (learn) update_learning(tm, st, cols, n);
  st->reset_called = 0;
  return anomaly;
}

/* one step of every stream from a [S, C] input (nonzero = active) */
typedef struct { btm_t *tm; const uint8_t *cols; int32_t learn; float *anomaly; } step_args;

static void step_range(const void *args, int64_t s0, int64_t s1) {
  const step_args *a = (const step_args *)args;
  const btm_t *tm = a->tm;
  for (int64_t s = s0; s < s1; ++s) {
    bstream_t *st = &tm->st[s];
    const uint8_t *x = a->cols + s * tm->C;
    vec_need(&st->acol, tm->C);
    int32_t n = 0;
    for (int32_t c = 0; c < tm->C; ++c) if (x[c]) st->acol.p[n++] = c;
    a->anomaly[s] = stream_step(tm, st, st->acol.p, n, a->learn);
  }
}

/* whole sequences: stream order[k] steps through its rows first_row[s] .. first_row[s] + nrows[s] - 1;
   row r's active columns are ids[row_ptr[r] .. row_ptr[r + 1]) (ascending) */
typedef struct {
  btm_t *tm; const int32_t *ids, *order; const int64_t *row_ptr, *first_row, *nrows; int32_t learn; float *anomaly;
} run_args;

static void run_range(const void *args, int64_t k0, int64_t k1) {
  const run_args *a = (const run_args *)args;
  for (int64_t k = k0; k < k1; ++k) {
    int32_t s = a->order[k];
    bstream_t *st = &a->tm->st[s];
    for (int64_t r = a->first_row[s], end = a->first_row[s] + a->nrows[s]; r < end; ++r)
      a->anomaly[r] = stream_step(a->tm, st, a->ids + a->row_ptr[r], (int32_t)(a->row_ptr[r + 1] - a->row_ptr[r]), a->learn);
  }
}

/* ---- API ---- */
void *cogsim_btm_new(const btm_params *p) {
  if (p->max_synapses_per_segment < 1 || p->max_synapses_per_segment > 1024 || p->columns < 1 ||
      p->cells_per_column < 1 || p->cells_per_column > 4096 || p->streams < 1)
    return NULL;
  btm_t *tm = (btm_t *)xcalloc(1, sizeof(btm_t));
  tm->S = p->streams; tm->C = p->columns; tm->K = p->cells_per_column; tm->N = (int64_t)p->columns * p->cells_per_column;
  tm->act_th = p->activation_threshold; tm->min_th = p->min_threshold; tm->new_syn = p->new_synapse_count;
  tm->max_seg = p->max_segments_per_cell; tm->max_syn = p->max_synapses_per_segment;
  tm->pam_len = p->pam_length; tm->max_inf_bt = p->max_inf_backtrack; tm->max_lrn_bt = p->max_lrn_backtrack;
  tm->max_seq = p->max_seq_length;
  tm->init = p->initial_permanence; tm->conn = p->connected_permanence; tm->inc = p->permanence_increment;
  tm->dec = p->permanence_decrement; tm->pmax = p->permanence_max; tm->seed = p->seed;
  tm->st = (bstream_t *)xcalloc((size_t)tm->S, sizeof(bstream_t));
  for (int32_t s = 0; s < tm->S; ++s) stream_init(tm, &tm->st[s], s);
  return tm;
}

void cogsim_btm_free(void *h) {
  btm_t *tm = (btm_t *)h;
  if (!tm) return;
  for (int32_t s = 0; s < tm->S; ++s) stream_free(tm, &tm->st[s]);
  free(tm->st); free(tm);
}

/* one step of every stream: cols [S*C] (nonzero = active), anomaly [S] out */
void cogsim_btm_compute(void *h, const uint8_t *cols, int32_t learn, float *anomaly, int32_t nthreads) {
  step_args a = {(btm_t *)h, cols, learn, anomaly};
  run_dynamic(step_range, &a, ((btm_t *)h)->S, 1, nthreads);
}

/* whole sequences of the streams in `order` (see run_args), streams spread over threads */
void cogsim_btm_run(void *h, const int32_t *ids, const int64_t *row_ptr, const int64_t *first_row, const int64_t *nrows,
                    const int32_t *order, int32_t norder, int32_t learn, float *anomaly, int32_t nthreads) {
  run_args a = {(btm_t *)h, ids, order, row_ptr, first_row, nrows, learn, anomaly};
  run_dynamic(run_range, &a, norder, 1, nthreads);
}

/* stream s draws its random numbers from `seed` from now on */
void cogsim_btm_seed(void *h, int32_t s, int64_t seed) { ((btm_t *)h)->st[s].rng = (uint64_t)seed; }

/* a reset: the next input starts on start cells; learning's queued updates are dropped */
void cogsim_btm_reset(void *h) {
  btm_t *tm = (btm_t *)h;
  for (int32_t s = 0; s < tm->S; ++s) {
    bstream_t *st = &tm->st[s];
    cellset_t *sets[] = {&st->inf_act, &st->inf_pred, &st->inf_pred1, &st->lrn_act, &st->lrn_act1, &st->lrn_pred,
                         &st->lrn_pred1};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; ++i) cs_clear(sets[i]);
    for (int32_t i = 0; i < st->conf_on.n; ++i) st->conf_col[st->conf_on.p[i]] = 0;
    st->conf_on.n = 0; st->nupd = 0; st->upd_src.n = 0;
    st->inf_hist.n = 0; st->lrn_hist.n = 0; st->reset_called = 1;
  }
}

/* one stream's state as 0/1 bytes: which = 0 inference active cells, 1 inference predicted cells,
   2 learning active cells, 3 learning predicted cells ([N] each), 4 confident columns ([C]) */
void cogsim_btm_state(void *h, int32_t s, int32_t which, uint8_t *out) {
  btm_t *tm = (btm_t *)h;
  bstream_t *st = &tm->st[s];
  if (which == 4) { for (int32_t i = 0; i < st->conf_on.n; ++i) out[st->conf_on.p[i]] = 1; return; }
  const cellset_t *sets[] = {&st->inf_act, &st->inf_pred, &st->lrn_act, &st->lrn_pred};
  const cellset_t *set = sets[which & 3];
  for (int32_t i = 0; i < set->on.n; ++i) out[set->on.p[i]] = 1;
}

/* per stream: live segments and synapses; returns bytes held */
int64_t cogsim_btm_stats(void *h, int64_t *nseg, int64_t *nsyn) {
  btm_t *tm = (btm_t *)h;
  int64_t bytes = (int64_t)sizeof(btm_t);
  for (int32_t s = 0; s < tm->S; ++s) {
    const bstream_t *st = &tm->st[s];
    int64_t syn = 0;
    for (int32_t g = 0; g < st->nseg; ++g) if (st->seg_cell[g] >= 0) syn += st->seg_n[g];
    nseg[s] = st->live; nsyn[s] = syn;
    bytes += (int64_t)st->cap_seg * (44 + 8 * (int64_t)tm->max_syn) + tm->N * 2 * (int64_t)sizeof(vec_t) + syn * 8;
  }
  return bytes;
}

/* one segment of one stream, for tests: its cell and synapses (src, perm) in presynaptic order;
   returns the synapse count, -1 when the slot is free, -2 past the last slot */
int32_t cogsim_btm_segment(void *h, int32_t s, int32_t g, int32_t *cell, int32_t *src, float *perm) {
  btm_t *tm = (btm_t *)h;
  bstream_t *st = &tm->st[s];
  if (g < 0 || g >= st->nseg) return -2;
  if (st->seg_cell[g] < 0) return -1;
  *cell = st->seg_cell[g];
  for (int32_t j = 0; j < st->seg_n[g]; ++j) { src[j] = st->src[(size_t)g * tm->max_syn + j]; perm[j] = st->perm[(size_t)g * tm->max_syn + j]; }
  return st->seg_n[g];
}
