/* The temporal memory's CPU kernel: the torch path's algorithm, bit for bit, one stream at a time
   (see cogsim/htm/native_tm.py for the data layout and the equality argument).

   Built by cogsim.native with -DCOGSIM_ABI, -DSALT_LU and -DSALT_GROW (counter_rng's salts). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "native_parallel.h"

#if !defined(COGSIM_ABI) || !defined(SALT_LU) || !defined(SALT_GROW)
#error "build with -DCOGSIM_ABI=<n> -DSALT_LU=<n> -DSALT_GROW=<n> (cogsim.native passes them)"
#endif

#define INL static inline __attribute__((always_inline))

int cogsim_htm_tm_abi(void) { return COGSIM_ABI; }

static void die_oom(void) { fputs("cogsim htm native: out of memory\n", stderr); abort(); }
static void *xrealloc(void *p, size_t n) { void *q = realloc(p, n ? n : 1); if (!q) die_oom(); return q; }
static void *xcalloc(size_t n, size_t s) { void *q = calloc(n ? n : 1, s ? s : 1); if (!q) die_oom(); return q; }

/* ---- counter-based draws: cogsim.htm.counter_rng ---- */
INL uint32_t mix32(uint32_t x) { x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; return x ^ (x >> 16); }
INL uint32_t fold(uint32_t h, uint32_t p) { return mix32((h ^ p) + 0x9E3779B9u); }

/* ---- growable int32 vector ---- */
typedef struct { int32_t *p; int64_t n, cap; } ivec;
static void iv_reserve(ivec *v, int64_t need) {
  if (need <= v->cap) return;
  int64_t cap = v->cap * 2 > need ? v->cap * 2 : need + 16;
  v->p = (int32_t *)xrealloc(v->p, (size_t)cap * sizeof(int32_t)); v->cap = cap;
}
INL void iv_push(ivec *v, int32_t x) { if (v->n == v->cap) iv_reserve(v, v->n + 1); v->p[v->n++] = x; }

/* ---- runs of int32 per key in one arena (presynaptic index; cell -> its segments) ---- */
typedef struct { uint32_t off, len, cap; } run_t;
typedef struct { run_t *run; int32_t *data; uint64_t size, alloc, garbage; int64_t nkeys, compactions; } lists_t;

static void lists_init(lists_t *l, int64_t nkeys) {
  memset(l, 0, sizeof *l); l->run = (run_t *)xcalloc((size_t)nkeys, sizeof(run_t)); l->nkeys = nkeys;
}
static void lists_free(lists_t *l) { free(l->run); free(l->data); memset(l, 0, sizeof *l); }
INL uint32_t lists_slack(uint32_t len) { return len ? len + (len >> 2) + 2 : 0; }
static void lists_compact(lists_t *l) {
  uint64_t total = 0, pos = 0;
  for (int64_t k = 0; k < l->nkeys; ++k) total += lists_slack(l->run[k].len);
  int32_t *nd = (int32_t *)xrealloc(NULL, (size_t)(total + 1024) * sizeof(int32_t));
  for (int64_t k = 0; k < l->nkeys; ++k) {
    run_t *r = &l->run[k];
    uint32_t cap = lists_slack(r->len);
    if (r->len) memcpy(nd + pos, l->data + r->off, (size_t)r->len * sizeof(int32_t));
    r->off = (uint32_t)pos; r->cap = cap; pos += cap;
  }
  free(l->data); l->data = nd; l->size = pos; l->alloc = total + 1024; l->garbage = 0; l->compactions++;
}
static void lists_reserve_tail(lists_t *l, uint64_t extra) {
  if (l->size + extra <= l->alloc) return;
  uint64_t alloc = l->alloc + (l->alloc >> 2) + extra + 1024;
  if (alloc > 0xFFFFFFF0ull) die_oom();
  l->data = (int32_t *)xrealloc(l->data, (size_t)alloc * sizeof(int32_t)); l->alloc = alloc;
}
static void lists_grow(lists_t *l, int64_t key, uint64_t compact_floor) {
  run_t *r = &l->run[key];
  if (l->garbage + r->cap > compact_floor && (l->garbage + r->cap) * 4 > l->size) {
    lists_compact(l);  /* leaves room in every non-empty run */
    if (r->len < r->cap) return;
  }
  uint32_t cap = r->cap < 4 ? 4 : r->cap + (r->cap >> 1);
  if (r->cap && (uint64_t)r->off + r->cap == l->size) {  /* last run in the arena: extend in place */
    lists_reserve_tail(l, cap - r->cap);
    l->size += cap - r->cap; r->cap = cap; return;
  }
  lists_reserve_tail(l, cap);
  if (r->len) memcpy(l->data + l->size, l->data + r->off, (size_t)r->len * sizeof(int32_t));
  l->garbage += r->cap; r->off = (uint32_t)l->size; r->cap = cap; l->size += cap;
}
INL void lists_push(lists_t *l, int64_t key, int32_t v, uint64_t compact_floor) {
  run_t *r = &l->run[key];
  if (r->len == r->cap) lists_grow(l, key, compact_floor);
  l->data[r->off + r->len++] = v;
}
INL int lists_remove(lists_t *l, int64_t key, int32_t v) {
  run_t *r = &l->run[key];
  int32_t *d = l->data + r->off;
  for (uint32_t i = 0; i < r->len; ++i)
    if (d[i] == v) { d[i] = d[r->len - 1]; r->len--; return 1; }
  return 0;
}

/* ---- one stream ---- */
typedef struct { int32_t pre; float perm; } syn_t;
typedef struct { int32_t cell, seg; int64_t uid; int32_t pot, conn; } cand_t;
typedef struct { ivec act, win; uint64_t *act_bits, *win_bits; } cells_t;

typedef struct {
  /* segments (slots) */
  int32_t nslot, cap_slot; ivec free_slots; int64_t live, next_uid;
  int32_t *cell; int64_t *uid, *last; uint32_t *soff, *cnt; uint16_t *nsyn, *scap;
  /* synapse arena */
  syn_t *syn; uint64_t syn_size, syn_alloc, syn_garbage; int64_t syn_compactions;
  lists_t pidx, cseg;
  /* sequence state: cur = last computed (the "previous" cells at the next step), nxt = scratch */
  cells_t cur, nxt;
  cand_t *cand; int64_t ncand, cap_cand; uint32_t epoch;
  /* scratch */
  ivec acol, learn, punish, newcells, newsegs, dup, ord; uint64_t *keys; int64_t cap_keys;
} stream_t;

typedef struct {
  int32_t S, C, K; int64_t N; int64_t words;
  int32_t act_th, min_th, floor_, max_new, max_seg, max_syn, nupic;
  float init, conn, inc, dec, psd, eps;
  int64_t seed; uint64_t compact_floor;
  stream_t *st;
} tm_t;

typedef struct {
  int32_t columns, cells_per_column, activation_threshold, min_threshold, max_new_synapse_count,
          max_segments_per_cell, max_synapses_per_segment, streams, nupic_rules;
  float initial_permanence, connected, permanence_increment, permanence_decrement,
        predicted_segment_decrement, epsilon;
  int64_t seed, compact_floor;
} tm_params;

INL int bit(const uint64_t *b, int64_t i) { return (int)((b[i >> 6] >> (i & 63)) & 1u); }
INL void bit_set(uint64_t *b, int64_t i) { b[i >> 6] |= (uint64_t)1 << (i & 63); }

static void cells_init(cells_t *c, int64_t words) {
  memset(c, 0, sizeof *c);
  c->act_bits = (uint64_t *)xcalloc((size_t)words, 8); c->win_bits = (uint64_t *)xcalloc((size_t)words, 8);
}
static void cells_clear(cells_t *c) {
  for (int64_t i = 0; i < c->act.n; ++i) c->act_bits[c->act.p[i] >> 6] = 0;
  for (int64_t i = 0; i < c->win.n; ++i) c->win_bits[c->win.p[i] >> 6] = 0;
  c->act.n = c->win.n = 0;
}
static void cells_free(cells_t *c) { free(c->act.p); free(c->win.p); free(c->act_bits); free(c->win_bits); }

static void stream_init(tm_t *tm, stream_t *st) {
  memset(st, 0, sizeof *st);
  lists_init(&st->pidx, tm->N); lists_init(&st->cseg, tm->N);
  cells_init(&st->cur, tm->words); cells_init(&st->nxt, tm->words);
  st->epoch = 1;
}
static void stream_free(stream_t *st) {
  free(st->free_slots.p); free(st->cell); free(st->uid); free(st->last); free(st->soff); free(st->cnt);
  free(st->nsyn); free(st->scap); free(st->syn); lists_free(&st->pidx); lists_free(&st->cseg);
  cells_free(&st->cur); cells_free(&st->nxt); free(st->cand);
  free(st->acol.p); free(st->learn.p); free(st->punish.p); free(st->newcells.p); free(st->newsegs.p);
  free(st->dup.p); free(st->ord.p); free(st->keys);
  memset(st, 0, sizeof *st);
}

/* ---- segment storage ---- */
static int32_t seg_alloc(stream_t *st) {
  if (st->free_slots.n) return st->free_slots.p[--st->free_slots.n];
  if (st->nslot == st->cap_slot) {
    int64_t cap = (int64_t)st->cap_slot + (st->cap_slot >> 1) + 64;
    if (cap > 0x7FFFFFF0) cap = 0x7FFFFFF0;
    if (cap <= st->cap_slot) die_oom();
    st->cell = (int32_t *)xrealloc(st->cell, (size_t)cap * 4); st->uid = (int64_t *)xrealloc(st->uid, (size_t)cap * 8);
    st->last = (int64_t *)xrealloc(st->last, (size_t)cap * 8); st->soff = (uint32_t *)xrealloc(st->soff, (size_t)cap * 4);
    st->cnt = (uint32_t *)xrealloc(st->cnt, (size_t)cap * 4);
    st->nsyn = (uint16_t *)xrealloc(st->nsyn, (size_t)cap * 2); st->scap = (uint16_t *)xrealloc(st->scap, (size_t)cap * 2);
    memset(st->cnt + st->cap_slot, 0, (size_t)(cap - st->cap_slot) * 4);
    st->cap_slot = (int32_t)cap;
  }
  return st->nslot++;
}

static void syn_compact(stream_t *st) {
  uint64_t total = 0, pos = 0;
  for (int32_t g = 0; g < st->nslot; ++g) if (st->cell[g] >= 0) total += st->nsyn[g];
  syn_t *nd = (syn_t *)xrealloc(NULL, (size_t)(total + 1024) * sizeof(syn_t));
  for (int32_t g = 0; g < st->nslot; ++g) {
    if (st->cell[g] < 0) continue;
    if (st->nsyn[g]) memcpy(nd + pos, st->syn + st->soff[g], (size_t)st->nsyn[g] * sizeof(syn_t));
    st->soff[g] = (uint32_t)pos; st->scap[g] = st->nsyn[g]; pos += st->nsyn[g];
  }
  free(st->syn); st->syn = nd; st->syn_size = pos; st->syn_alloc = total + 1024; st->syn_garbage = 0;
  st->syn_compactions++;
}
static void syn_reserve_tail(stream_t *st, uint64_t extra) {
  if (st->syn_size + extra <= st->syn_alloc) return;
  uint64_t alloc = st->syn_alloc + (st->syn_alloc >> 2) + extra + 1024;
  if (alloc > 0xFFFFFFF0ull) die_oom();
  st->syn = (syn_t *)xrealloc(st->syn, (size_t)alloc * sizeof(syn_t)); st->syn_alloc = alloc;
}
/* room for `need` synapses on segment g (may move it; re-read st->syn + st->soff[g] afterwards) */
static void seg_reserve(const tm_t *tm, stream_t *st, int32_t g, uint32_t need) {
  uint32_t old = st->scap[g];
  if (need <= old) return;
  uint32_t cap = old + (old >> 1);
  if (cap < need) cap = need;
  if (cap > (uint32_t)tm->max_syn) cap = (uint32_t)tm->max_syn;
  if (!(old && (uint64_t)st->soff[g] + old == st->syn_size) &&
      st->syn_garbage + old > tm->compact_floor && (st->syn_garbage + old) * 4 > st->syn_size) {
    syn_compact(st);  /* every segment's room is then exactly its synapses */
    old = st->scap[g];
  }
  if (old && (uint64_t)st->soff[g] + old == st->syn_size) {  /* last in the arena: extend in place */
    syn_reserve_tail(st, cap - old); st->syn_size += cap - old; st->scap[g] = (uint16_t)cap; return;
  }
  syn_reserve_tail(st, cap);
  if (st->nsyn[g]) memcpy(st->syn + st->syn_size, st->syn + st->soff[g], (size_t)st->nsyn[g] * sizeof(syn_t));
  st->syn_garbage += old; st->soff[g] = (uint32_t)st->syn_size; st->scap[g] = (uint16_t)cap; st->syn_size += cap;
}

static int32_t seg_create(const tm_t *tm, stream_t *st, int32_t cell, int64_t uid, int64_t last) {
  int32_t g = seg_alloc(st);
  st->cell[g] = cell; st->uid[g] = uid; st->last[g] = last; st->nsyn[g] = 0; st->scap[g] = 0; st->soff[g] = 0;
  lists_push(&st->cseg, cell, g, tm->compact_floor);
  st->live++;
  return g;
}

static void seg_destroy(stream_t *st, int32_t g) {
  syn_t *sy = st->syn + st->soff[g];
  for (int j = 0; j < st->nsyn[g]; ++j) lists_remove(&st->pidx, sy[j].pre, g);
  lists_remove(&st->cseg, st->cell[g], g);
  if (st->scap[g]) {
    if ((uint64_t)st->soff[g] + st->scap[g] == st->syn_size) st->syn_size -= st->scap[g];
    else st->syn_garbage += st->scap[g];
  }
  st->cell[g] = -1; st->nsyn[g] = 0; st->scap[g] = 0; st->live--;
  iv_push(&st->free_slots, g);
}

/* ---- sorting (keys are always distinct, so any correct sort gives the same order) ---- */
/* quicksort (median of three, the smaller part first) with an insertion sort for short runs;
   comparisons inline, not through qsort's function pointer */
#define DEFINE_SORT(NAME, T, LESS)                                                              \
  static void NAME(T *v, int64_t n) {                                                           \
    while (n > 24) {                                                                            \
      T a = v[0], b = v[n / 2], c = v[n - 1], p;                                                \
      if (LESS(a, b)) p = LESS(b, c) ? b : (LESS(a, c) ? c : a);                                \
      else p = LESS(a, c) ? a : (LESS(b, c) ? c : b);                                           \
      int64_t i = 0, j = n - 1;                                                                 \
      for (;;) {                                                                                \
        while (LESS(v[i], p)) ++i;                                                              \
        while (LESS(p, v[j])) --j;                                                              \
        if (i >= j) break;                                                                      \
        T t = v[i]; v[i] = v[j]; v[j] = t; ++i; --j;                                            \
      }                                                                                         \
      /* v[0..j] <= p <= v[j+1..n) */                                                           \
      if (j + 1 < n - j - 1) { NAME(v, j + 1); v += j + 1; n -= j + 1; }                        \
      else { NAME(v + j + 1, n - j - 1); n = j + 1; }                                           \
    }                                                                                           \
    for (int64_t i = 1; i < n; ++i) {                                                           \
      T x = v[i]; int64_t j = i;                                                                \
      while (j > 0 && LESS(x, v[j - 1])) { v[j] = v[j - 1]; --j; }                             \
      v[j] = x;                                                                                 \
    }                                                                                           \
  }
#define U64_LESS(x, y) ((x) < (y))
#define CAND_LESS(x, y) ((x).cell < (y).cell || ((x).cell == (y).cell && (x).uid < (y).uid))
DEFINE_SORT(sort_u64, uint64_t, U64_LESS)
DEFINE_SORT(sort_cands, cand_t, CAND_LESS)
static uint64_t *keys_reserve(stream_t *st, int64_t n) {
  if (n > st->cap_keys) { st->cap_keys = n + 64; st->keys = (uint64_t *)xrealloc(st->keys, (size_t)st->cap_keys * 8); }
  return st->keys;
}

/* ---- activateDendrites on st->cur.act ---- */
static void dendrites(const tm_t *tm, stream_t *st) {
  st->epoch++;
  if (st->epoch > 0xFFFFu) { memset(st->cnt, 0, (size_t)st->cap_slot * 4); st->epoch = 1; }
  const uint32_t tag = st->epoch << 16, floor_ = (uint32_t)tm->floor_;
  uint32_t *cnt = st->cnt;
  int64_t ncand = 0;
  const int32_t *act = st->cur.act.p;
  const int64_t nact = st->cur.act.n;
  /* with many streams the state is out of cache: fetch the index entries a few cells ahead */
  for (int64_t a = 0; a < nact && a < 8; ++a) __builtin_prefetch(&st->pidx.run[act[a]]);
  for (int64_t a = 0; a < nact; ++a) {
    if (a + 8 < nact) __builtin_prefetch(&st->pidx.run[act[a + 8]]);
    if (a + 4 < nact) __builtin_prefetch(st->pidx.data + st->pidx.run[act[a + 4]].off);
    const run_t r = st->pidx.run[act[a]];
    const int32_t *d = st->pidx.data + r.off;
    for (uint32_t e = 0; e < r.len; ++e) {
      int32_t g = d[e];
      uint32_t v = cnt[g];
      v = ((v & 0xFFFF0000u) == tag ? v : tag) + 1;
      cnt[g] = v;
      if ((v & 0xFFFFu) == floor_) {
        if (ncand == st->cap_cand) {
          st->cap_cand = st->cap_cand * 2 + 64; st->cand = (cand_t *)xrealloc(st->cand, (size_t)st->cap_cand * sizeof(cand_t));
        }
        st->cand[ncand++].seg = g;
      }
    }
  }
  const uint64_t *bits = st->cur.act_bits;
  const float conn_th = tm->conn;
  for (int64_t i = 0; i < ncand; ++i) {
    cand_t *c = &st->cand[i];
    int32_t g = c->seg;
    if (i + 4 < ncand) {  /* the synapse rows of a candidate a few ahead (rows of 32 synapses span 4 lines) */
      const char *row = (const char *)(st->syn + st->soff[st->cand[i + 4].seg]);
      for (int k = 0; k < 4; ++k) __builtin_prefetch(row + 64 * k);
    }
    const syn_t *sy = st->syn + st->soff[g];
    int conn = 0;
    for (int j = 0; j < st->nsyn[g]; ++j) conn += bit(bits, sy[j].pre) & (sy[j].perm >= conn_th);
    c->cell = st->cell[g]; c->uid = st->uid[g]; c->pot = (int32_t)(cnt[g] & 0xFFFFu); c->conn = conn;
  }
  sort_cands(st->cand, ncand);
  st->ncand = ncand;
}

/* ---- learning on one segment ---- */
/* adaptSegment: +inc on synapses to previously active cells, -dec on the others; prune; returns alive */
static int adapt(const tm_t *tm, stream_t *st, int32_t g, float inc, float dec) {
  syn_t *sy = st->syn + st->soff[g];
  const uint64_t *prev = st->cur.act_bits;
  int n = st->nsyn[g];
  const float ndec = -dec, eps = tm->eps;
  for (int j = 0; j < n;) {
    float p = sy[j].perm + (bit(prev, sy[j].pre) ? inc : ndec);
    if (p < eps) { lists_remove(&st->pidx, sy[j].pre, g); sy[j] = sy[--n]; continue; }
    sy[j].perm = p > 1.0f ? 1.0f : (p < 0.0f ? 0.0f : p);
    ++j;
  }
  st->nsyn[g] = (uint16_t)n;
  if (n < tm->min_th) { seg_destroy(st, g); return 0; }
  return 1;
}

INL int64_t find_sorted(const int32_t *v, int64_t n, int32_t x) {
  int64_t lo = 0, hi = n;
  while (lo < hi) { int64_t m = (lo + hi) >> 1; if (v[m] < x) lo = m + 1; else hi = m; }
  return lo;
}

/* destroyMinPermanenceSynapses: drop the `overrun` weakest synapses not onto previous winners
   (equal permanences: lower presynaptic cell first) */
static void make_room(stream_t *st, int32_t g, int overrun) {
  syn_t *sy = st->syn + st->soff[g];
  int n = st->nsyn[g];
  const uint64_t *win = st->cur.win_bits;
  uint64_t *keys = keys_reserve(st, n);
  int64_t m = 0;
  for (int j = 0; j < n; ++j) {
    if (bit(win, sy[j].pre)) continue;
    uint32_t pb; memcpy(&pb, &sy[j].perm, 4);  /* permanences are >= 0: bit order = value order */
    keys[m++] = ((uint64_t)pb << 32) | (uint32_t)sy[j].pre;
  }
  sort_u64(keys, m);
  int kill = overrun < m ? overrun : (int)m;
  for (int t = 0; t < kill; ++t) {
    int32_t pre = (int32_t)(uint32_t)keys[t];
    for (int j = 0; j < n; ++j)
      if (sy[j].pre == pre) { lists_remove(&st->pidx, pre, g); sy[j] = sy[--n]; break; }
  }
  st->nsyn[g] = (uint16_t)n;
}

/* visiting order of the previous winners: random (counter-based draws) when not all can be taken */
static const int32_t *visit_order(stream_t *st, int32_t g, int shuffle, uint32_t grow_key) {
  const int32_t *W = st->cur.win.p;
  int64_t nW = st->cur.win.n;
  iv_reserve(&st->ord, nW);
  int32_t *ord = st->ord.p;
  if (!shuffle) { for (int64_t r = 0; r < nW; ++r) ord[r] = (int32_t)r; return ord; }
  uint64_t *keys = keys_reserve(st, nW);
  uint32_t h = fold(grow_key, (uint32_t)st->uid[g]);
  for (int64_t r = 0; r < nW; ++r) keys[r] = ((uint64_t)fold(h, (uint32_t)W[r]) << 32) | (uint32_t)r;
  sort_u64(keys, nW);
  for (int64_t r = 0; r < nW; ++r) ord[r] = (int32_t)(uint32_t)keys[r];
  return ord;
}

/* growSynapses onto the previous winner cells (an existing segment) */
static void grow(const tm_t *tm, stream_t *st, int32_t g, int n_desired, uint32_t grow_key) {
  const int32_t *W = st->cur.win.p;
  int64_t nW = st->cur.win.n;
  if (nW == 0) return;
  int n_act = n_desired < nW ? n_desired : (int)nW;
  int overrun = st->nsyn[g] + n_act - tm->max_syn;
  if (overrun > 0) {
    make_room(st, g, overrun);
    if (n_act > tm->max_syn - st->nsyn[g]) n_act = tm->max_syn - st->nsyn[g];
  }
  if (n_act <= 0) return;
  int n = st->nsyn[g];
  iv_reserve(&st->dup, nW);
  int32_t *dup = st->dup.p;
  for (int64_t r = 0; r < nW; ++r) dup[r] = -1;
  {
    const syn_t *sy = st->syn + st->soff[g];
    for (int j = 0; j < n; ++j)
      if (bit(st->cur.win_bits, sy[j].pre)) dup[find_sorted(W, nW, sy[j].pre)] = j;
  }
  const int32_t *ord = visit_order(st, g, n_desired < nW, grow_key);
  seg_reserve(tm, st, g, (uint32_t)(n + n_act));
  syn_t *sy = st->syn + st->soff[g];
  int created = 0;
  for (int64_t t = 0; t < nW && created < n_act; ++t) {
    int32_t r = ord[t];
    if (dup[r] >= 0) { if (sy[dup[r]].perm < tm->init) sy[dup[r]].perm = tm->init; continue; }
    sy[n + created].pre = W[r]; sy[n + created].perm = tm->init; created++;
    lists_push(&st->pidx, W[r], g, tm->compact_floor);
  }
  st->nsyn[g] = (uint16_t)(n + created);
}

/* growSynapses on a new (empty) segment */
static void grow_fresh(const tm_t *tm, stream_t *st, int32_t g, int n_desired, uint32_t grow_key) {
  const int32_t *W = st->cur.win.p;
  int64_t nW = st->cur.win.n;
  int n_act = n_desired < nW ? n_desired : (int)nW;
  if (n_act > tm->max_syn) n_act = tm->max_syn;
  if (n_act <= 0) return;
  const int32_t *ord = visit_order(st, g, n_desired < nW, grow_key);
  seg_reserve(tm, st, g, (uint32_t)n_act);
  syn_t *sy = st->syn + st->soff[g];
  for (int t = 0; t < n_act; ++t) {
    sy[t].pre = W[ord[t]]; sy[t].perm = tm->init;
    lists_push(&st->pidx, W[ord[t]], g, tm->compact_floor);
  }
  st->nsyn[g] = (uint16_t)n_act;
}

/* NuPIC's rule: a cell at max_segments_per_cell loses its least recently used segment (ties: oldest) */
static void evict_lru(stream_t *st, int32_t cell) {
  const run_t r = st->cseg.run[cell];
  const int32_t *d = st->cseg.data + r.off;
  int32_t best = d[0];
  for (uint32_t i = 1; i < r.len; ++i) {
    int32_t g = d[i];
    if (st->last[g] < st->last[best] || (st->last[g] == st->last[best] && st->uid[g] < st->uid[best])) best = g;
  }
  seg_destroy(st, best);
}

/* sum of squared permanences, in double, smallest terms first (exact squares; the order makes the
   sum independent of where the synapses lie, as in the torch path) */
static double strength(stream_t *st, int32_t g) {
  const int64_t n = st->nsyn[g];
  const syn_t *sy = st->syn + st->soff[g];
  uint64_t *keys = keys_reserve(st, n);
  for (int64_t j = 0; j < n; ++j) {  /* non-negative doubles sort like their bit patterns */
    double q = (double)sy[j].perm * (double)sy[j].perm;
    memcpy(&keys[j], &q, 8);
  }
  sort_u64(keys, n);
  double acc = 0.0;
  for (int64_t j = 0; j < n; ++j) { double q; memcpy(&q, &keys[j], 8); acc += q; }
  return acc;
}

/* htm.core's rule (pruneSegment_): the segment with the smallest sum of squared permanences goes
   (ties: oldest) */
static void evict_weakest(stream_t *st, int32_t cell) {
  const run_t r = st->cseg.run[cell];
  const int32_t *d = st->cseg.data + r.off;
  int32_t best = d[0];
  double hb = strength(st, best);
  for (uint32_t i = 1; i < r.len; ++i) {
    int32_t g = d[i];
    double h = strength(st, g);
    if (h < hb || (h == hb && st->uid[g] < st->uid[best])) { best = g; hb = h; }
  }
  seg_destroy(st, best);
}

/* ---- one step of one stream ---- */
typedef struct {
  tm_t *tm; const uint8_t *cols; int32_t learn; int64_t step, iteration;
  float *anomaly; uint8_t *act_out, *win_out;
} step_args;

static void stream_step(const step_args *a, int32_t s) {
  tm_t *tm = a->tm;
  stream_t *st = &tm->st[s];
  const int32_t C = tm->C, K = tm->K;
  const uint8_t *x = a->cols + (int64_t)s * C;
  /* active columns, ascending */
  iv_reserve(&st->acol, C);
  int64_t nac = 0;
  int32_t *acol = st->acol.p;
  int32_t c0 = 0;
  for (; c0 + 8 <= C; c0 += 8) {
    uint64_t w; memcpy(&w, x + c0, 8);
    if (w) for (int b = 0; b < 8; ++b) if (x[c0 + b]) acol[nac++] = c0 + b;
  }
  for (; c0 < C; ++c0) if (x[c0]) acol[nac++] = c0;
  if (nac == 0 && st->ncand == 0 && st->cur.act.n == 0 && st->cur.win.n == 0) { a->anomaly[s] = 0.0f; return; }

  const int learn = a->learn;
  const uint32_t seed = (uint32_t)(uint64_t)(tm->seed + s);
  const uint32_t lu_key = fold(fold(fold(0, (uint32_t)SALT_LU), (uint32_t)(uint64_t)a->step), seed);
  const uint32_t grow_key = fold(fold(fold(0, (uint32_t)SALT_GROW), (uint32_t)(uint64_t)a->step), seed);
  cells_t *nx = &st->nxt;
  cells_clear(nx);
  st->learn.n = st->punish.n = st->newcells.n = st->newsegs.n = 0;
  const cand_t *cand = st->cand;
  const int64_t ncand = st->ncand;
  if (learn)
    for (int64_t i = 0; i < ncand; ++i) if (cand[i].conn >= tm->act_th) st->last[cand[i].seg] = a->iteration;
  int64_t i = 0, j = 0, nburst = 0;
  while (i < ncand || j < nac) {
    int32_t col_c = i < ncand ? cand[i].cell / K : INT32_MAX;
    int32_t col_a = j < nac ? acol[j] : INT32_MAX;
    int32_t col = col_c < col_a ? col_c : col_a;
    int64_t i0 = i;
    while (i < ncand && cand[i].cell / K == col) ++i;
    if (col_a != col) {  /* inactive column: punish its matching segments */
      if (learn && tm->psd > 0.0f)
        for (int64_t k = i0; k < i; ++k) if (cand[k].pot >= tm->min_th) iv_push(&st->punish, (int32_t)k);
      continue;
    }
    ++j;
    int predicted = 0;
    for (int64_t k = i0; k < i; ++k) if (cand[k].conn >= tm->act_th) { predicted = 1; break; }
    if (predicted) {  /* its predicted cells fire and win; their active segments learn */
      int32_t lastcell = -1;
      for (int64_t k = i0; k < i; ++k) {
        if (cand[k].conn < tm->act_th) continue;
        if (cand[k].cell != lastcell) {
          lastcell = cand[k].cell;
          iv_push(&nx->act, lastcell); bit_set(nx->act_bits, lastcell);
          iv_push(&nx->win, lastcell); bit_set(nx->win_bits, lastcell);
        }
        if (learn) iv_push(&st->learn, (int32_t)k);
      }
      continue;
    }
    ++nburst;  /* burst: every cell fires; the winner learns */
    for (int32_t k = 0; k < K; ++k) { int32_t cell = col * K + k; iv_push(&nx->act, cell); bit_set(nx->act_bits, cell); }
    int64_t best = -1;
    for (int64_t k = i0; k < i; ++k) {
      if (cand[k].pot < tm->min_th) continue;
      if (best < 0 || cand[k].pot > cand[best].pot ||
          (cand[k].pot == cand[best].pot && (cand[k].cell < cand[best].cell ||
                                              (cand[k].cell == cand[best].cell && cand[k].uid < cand[best].uid))))
        best = k;
    }
    int32_t winner;
    if (best >= 0) {
      winner = cand[best].cell;
      if (learn) iv_push(&st->learn, (int32_t)best);
    } else {  /* htm.core: the column's previous winner (the lowest), else the least used cell */
      winner = -1;
      if (!tm->nupic)
        for (int32_t k = 0; k < K; ++k) if (bit(st->cur.win_bits, col * K + k)) { winner = col * K + k; break; }
      if (winner < 0) {  /* fewest segments; ties: lowest index (NuPIC: a counter-based random draw) */
        uint64_t bk = UINT64_MAX; winner = col * K;
        for (int32_t k = 0; k < K; ++k) {
          int32_t cell = col * K + k;
          uint32_t tie = tm->nupic ? fold(lu_key, (uint32_t)cell) : (uint32_t)k;
          uint64_t key = ((uint64_t)st->cseg.run[cell].len << 32) | tie;
          if (key < bk) { bk = key; winner = cell; }
        }
      }
      if (learn && st->cur.win.n > 0 && tm->max_new > 0) iv_push(&st->newcells, winner);
    }
    iv_push(&nx->win, winner); bit_set(nx->win_bits, winner);
  }
  a->anomaly[s] = nac ? (float)nburst / (float)nac : 0.0f;
  if (learn) {
    /* new segments first (uids in column order), then adapt, then grow */
    for (int64_t k = 0; k < st->newcells.n; ++k) {
      int32_t cell = st->newcells.p[k];
      if ((int64_t)st->cseg.run[cell].len >= tm->max_seg) {
        if (tm->nupic) evict_lru(st, cell);
        else evict_weakest(st, cell);
      }
      iv_push(&st->newsegs, seg_create(tm, st, cell, st->next_uid++, a->iteration));
    }
    for (int64_t k = 0; k < st->learn.n; ++k) {
      int32_t q = st->learn.p[k];
      if (!adapt(tm, st, cand[q].seg, tm->inc, tm->dec)) st->learn.p[k] = -1;
    }
    for (int64_t k = 0; k < st->punish.n; ++k) adapt(tm, st, cand[st->punish.p[k]].seg, -tm->psd, 0.0f);
    for (int64_t k = 0; k < st->learn.n; ++k) {
      int32_t q = st->learn.p[k];
      if (q < 0) continue;
      int nd = tm->max_new - cand[q].pot;
      if (nd > 0) grow(tm, st, cand[q].seg, nd, grow_key);
    }
    int n_fresh = tm->max_new < st->cur.win.n ? tm->max_new : (int)st->cur.win.n;
    for (int64_t k = 0; k < st->newsegs.n; ++k) grow_fresh(tm, st, st->newsegs.p[k], n_fresh, grow_key);
  }
  /* publish the new cells, then predict the next step */
  const int64_t base = (int64_t)s * tm->N;
  for (int64_t k = 0; k < st->cur.act.n; ++k) a->act_out[base + st->cur.act.p[k]] = 0;
  for (int64_t k = 0; k < st->cur.win.n; ++k) a->win_out[base + st->cur.win.p[k]] = 0;
  for (int64_t k = 0; k < nx->act.n; ++k) a->act_out[base + nx->act.p[k]] = 1;
  for (int64_t k = 0; k < nx->win.n; ++k) a->win_out[base + nx->win.p[k]] = 1;
  cells_t tmp = st->cur; st->cur = st->nxt; st->nxt = tmp;
  dendrites(tm, st);
}

/* streams one at a time from a shared counter (a thread on a busy core does not hold the others up) */
static void streams_range(const void *args, int64_t s0, int64_t s1) {
  for (int64_t s = s0; s < s1; ++s) stream_step((const step_args *)args, (int32_t)s);
}

/* ---- API ---- */
void *cogsim_htm_tm_new(const tm_params *p) {
  tm_t *tm = (tm_t *)xcalloc(1, sizeof(tm_t));
  tm->S = p->streams; tm->C = p->columns; tm->K = p->cells_per_column; tm->N = (int64_t)p->columns * p->cells_per_column;
  tm->words = (tm->N + 63) / 64;
  tm->act_th = p->activation_threshold; tm->min_th = p->min_threshold;
  tm->floor_ = p->min_threshold > 1 ? p->min_threshold : 1;
  tm->max_new = p->max_new_synapse_count; tm->max_seg = p->max_segments_per_cell; tm->max_syn = p->max_synapses_per_segment;
  tm->nupic = p->nupic_rules;
  tm->init = p->initial_permanence; tm->conn = p->connected; tm->inc = p->permanence_increment;
  tm->dec = p->permanence_decrement; tm->psd = p->predicted_segment_decrement; tm->eps = p->epsilon;
  tm->seed = p->seed; tm->compact_floor = (uint64_t)p->compact_floor;
  tm->st = (stream_t *)xcalloc((size_t)tm->S, sizeof(stream_t));
  for (int32_t s = 0; s < tm->S; ++s) stream_init(tm, &tm->st[s]);
  return tm;
}

void cogsim_htm_tm_free(void *h) {
  tm_t *tm = (tm_t *)h;
  if (!tm) return;
  for (int32_t s = 0; s < tm->S; ++s) stream_free(&tm->st[s]);
  free(tm->st); free(tm);
}

void cogsim_htm_tm_compute(void *h, const uint8_t *cols, int32_t learn, int64_t step, int64_t iteration,
                           float *anomaly, uint8_t *act_out, uint8_t *win_out, int32_t nthreads) {
  step_args a = {(tm_t *)h, cols, learn, step, iteration, anomaly, act_out, win_out};
  run_dynamic(streams_range, &a, ((tm_t *)h)->S, 1, nthreads);
}

/* forget the sequence context; act_out/win_out entries of the current cells are cleared */
void cogsim_htm_tm_reset(void *h, uint8_t *act_out, uint8_t *win_out) {
  tm_t *tm = (tm_t *)h;
  for (int32_t s = 0; s < tm->S; ++s) {
    stream_t *st = &tm->st[s];
    const int64_t base = (int64_t)s * tm->N;
    for (int64_t k = 0; k < st->cur.act.n; ++k) act_out[base + st->cur.act.p[k]] = 0;
    for (int64_t k = 0; k < st->cur.win.n; ++k) win_out[base + st->cur.win.p[k]] = 0;
    cells_clear(&st->cur); cells_clear(&st->nxt); st->ncand = 0;
  }
}

/* predicted columns [S*C] and/or predictive cells [S*N] (zeroed by the caller; NULL: skip) */
void cogsim_htm_tm_predicted(void *h, uint8_t *cols, uint8_t *cells) {
  tm_t *tm = (tm_t *)h;
  for (int32_t s = 0; s < tm->S; ++s) {
    const stream_t *st = &tm->st[s];
    for (int64_t i = 0; i < st->ncand; ++i) {
      if (st->cand[i].conn < tm->act_th) continue;
      if (cols) cols[(int64_t)s * tm->C + st->cand[i].cell / tm->K] = 1;
      if (cells) cells[(int64_t)s * tm->N + st->cand[i].cell] = 1;
    }
  }
}

/* per stream: live segments, live synapses, largest segment; returns bytes allocated */
int64_t cogsim_htm_tm_stats(void *h, int64_t *nseg, int64_t *nsyn, int64_t *maxsyn, int64_t *compactions) {
  tm_t *tm = (tm_t *)h;
  int64_t bytes = (int64_t)sizeof(tm_t) + (int64_t)tm->S * (int64_t)sizeof(stream_t), comp = 0;
  for (int32_t s = 0; s < tm->S; ++s) {
    const stream_t *st = &tm->st[s];
    int64_t total = 0, mx = 0;
    for (int32_t g = 0; g < st->nslot; ++g) if (st->cell[g] >= 0) { total += st->nsyn[g]; if (st->nsyn[g] > mx) mx = st->nsyn[g]; }
    if (nseg) nseg[s] = st->live;
    if (nsyn) nsyn[s] = total;
    if (maxsyn) maxsyn[s] = mx;
    comp += st->syn_compactions + st->pidx.compactions + st->cseg.compactions;
    bytes += (int64_t)st->cap_slot * 32 + (int64_t)st->syn_alloc * (int64_t)sizeof(syn_t)
           + (int64_t)(st->pidx.alloc + st->cseg.alloc) * 4 + 2 * tm->N * (int64_t)sizeof(run_t)
           + 4 * tm->words * 8 + (int64_t)st->cap_cand * (int64_t)sizeof(cand_t);
  }
  if (compactions) *compactions = comp;
  return bytes;
}

/* The torch layout: rows s*cap + r, live segments of stream s by uid, synapses by presynaptic cell;
   global cell ids (s*N + cell). Arrays come pre-filled with padding (pad / 0 / -1). */
void cogsim_htm_tm_export(void *h, int64_t cap, int64_t width, int32_t *syn_pre, float *syn_perm, int32_t *seg_cell,
                          int64_t *seg_uid, int64_t *seg_last, int32_t *seg_nsyn, int64_t *seg_top, int64_t *next_uid,
                          int32_t *cell_nseg) {
  tm_t *tm = (tm_t *)h;
  for (int32_t s = 0; s < tm->S; ++s) {
    stream_t *st = &tm->st[s];
    const int64_t base = (int64_t)s * tm->N;
    cand_t *segs = (cand_t *)xrealloc(NULL, (size_t)(st->live + 1) * sizeof(cand_t));
    int64_t m = 0;
    for (int32_t g = 0; g < st->nslot; ++g)
      if (st->cell[g] >= 0) { segs[m].cell = 0; segs[m].uid = st->uid[g]; segs[m].seg = g; ++m; }
    sort_cands(segs, m);  /* by uid */
    uint64_t *sk = (uint64_t *)xrealloc(NULL, (size_t)(tm->max_syn + 1) * 8);
    for (int64_t r = 0; r < m; ++r) {
      int32_t g = segs[r].seg;
      int64_t row = (int64_t)s * cap + r;
      const syn_t *sy = st->syn + st->soff[g];
      int n = st->nsyn[g];
      for (int j = 0; j < n; ++j) sk[j] = ((uint64_t)(uint32_t)sy[j].pre << 32) | (uint32_t)j;
      sort_u64(sk, n);
      for (int j = 0; j < n; ++j) {
        const syn_t *y = &sy[(uint32_t)sk[j]];
        syn_pre[row * width + j] = (int32_t)(base + y->pre); syn_perm[row * width + j] = y->perm;
      }
      seg_cell[row] = (int32_t)(base + st->cell[g]); seg_uid[row] = st->uid[g]; seg_last[row] = st->last[g];
      seg_nsyn[row] = n;
    }
    free(sk); free(segs);
    seg_top[s] = m; next_uid[s] = st->next_uid;
    for (int64_t c = 0; c < tm->N; ++c) cell_nseg[base + c] = (int32_t)st->cseg.run[c].len;
  }
}

/* Rebuild every stream from the torch layout (any slot order) and the saved active/winner cells;
   returns 0, or 1 + the first bad row. */
int64_t cogsim_htm_tm_load(void *h, int64_t cap, int64_t width, const int32_t *syn_pre, const float *syn_perm,
                           const int32_t *seg_cell, const int64_t *seg_uid, const int64_t *seg_last,
                           const int64_t *next_uid, const uint8_t *act_in, const uint8_t *win_in) {
  tm_t *tm = (tm_t *)h;
  for (int32_t s = 0; s < tm->S; ++s) {
    stream_t *st = &tm->st[s];
    stream_free(st); stream_init(tm, st);
    const int64_t base = (int64_t)s * tm->N;
    for (int64_t r = 0; r < cap; ++r) {
      int64_t row = (int64_t)s * cap + r;
      if (seg_cell[row] < 0) continue;
      int64_t cell = (int64_t)seg_cell[row] - base;
      if (cell < 0 || cell >= tm->N || seg_uid[row] < 0 || seg_uid[row] >= ((int64_t)1 << 40)) return 1 + row;
      int n = 0;
      for (int64_t w = 0; w < width; ++w) {
        int64_t pre = (int64_t)syn_pre[row * width + w] - base;
        if (pre == (int64_t)tm->S * tm->N - base) continue;  /* padding */
        if (pre < 0 || pre >= tm->N) return 1 + row;
        ++n;
      }
      if (n > tm->max_syn) return 1 + row;
      if ((int64_t)st->cseg.run[cell].len >= tm->max_seg) return 1 + row;
      int32_t g = seg_create(tm, st, (int32_t)cell, seg_uid[row], seg_last[row]);
      seg_reserve(tm, st, g, (uint32_t)n);
      syn_t *sy = st->syn + st->soff[g];
      int k = 0;
      for (int64_t w = 0; w < width; ++w) {
        int64_t pre = (int64_t)syn_pre[row * width + w] - base;
        if (pre == (int64_t)tm->S * tm->N - base) continue;
        sy[k].pre = (int32_t)pre; sy[k].perm = syn_perm[row * width + w]; ++k;
        lists_push(&st->pidx, pre, g, tm->compact_floor);
      }
      st->nsyn[g] = (uint16_t)n;
    }
    st->next_uid = next_uid[s];
    for (int64_t c = 0; c < tm->N; ++c) {
      if (act_in[base + c]) { iv_push(&st->cur.act, (int32_t)c); bit_set(st->cur.act_bits, c); }
      if (win_in[base + c]) { iv_push(&st->cur.win, (int32_t)c); bit_set(st->cur.win_bits, c); }
    }
    dendrites(tm, st);
  }
  return 0;
}
