/* The LIF and synaptic kernels for one floating type, included by native.c once per type with
   REAL (the type), SFX(name) (name with the type's suffix), EXP and FABS (its exp and fabs) defined.
   Backward: dalpha/dbeta/dthr may be NULL (not needed); then none of them is computed. */
typedef struct {
  const REAL *x, *alpha, *beta, *thr, *syn0, *mem0;
  REAL *spk, *syn, *mem;
  int64_t T, M; int reset;
} SFX(fwd);

typedef struct {
  const REAL *gs, *gsyn, *gm, *syn, *mem, *syn0, *mem0, *alpha, *beta, *thr, *sg;
  int kind; double p1, p2;
  REAL *dx, *dalpha, *dbeta, *dthr, *dsyn0, *dmem0;
  int64_t T, M; int reset;
} SFX(bwd);

/* snntorch.surrogate backward formulas, dS/du at u = mem - threshold. */
INL void SFX(surrogate_row)(int kind, double p1, double p2, const REAL *restrict m, const REAL *restrict th,
                           const REAL *restrict pre, REAL *restrict sg, int64_t n) {
  int64_t j;
  switch (kind) {
  case 0: { const REAL k = (REAL)(M_PI / 2 * p1), h = (REAL)(p1 / 2);
    for (j = 0; j < n; ++j) { REAL v = k * (m[j] - th[j]); sg[j] = h / (1 + v * v); } break; }
  case 1: { const REAL k = (REAL)p1;
    for (j = 0; j < n; ++j) { REAL d = k * FABS(m[j] - th[j]) + (REAL)1; sg[j] = (REAL)1 / (d * d); } break; }
  case 2: { const REAL k = (REAL)p1;
    for (j = 0; j < n; ++j) { REAL e = EXP(-k * (m[j] - th[j])); sg[j] = k * e / ((e + 1) * (e + 1)); } break; }
  case 3: for (j = 0; j < n; ++j) sg[j] = 1; break;
  case 4: { const REAL k = (REAL)p1;
    for (j = 0; j < n; ++j) { sg[j] = (m[j] - th[j] >= 0) ? -k : k; } break; }
  case 5: for (j = 0; j < n; ++j) sg[j] = (m[j] - th[j] > 0) ? 1 : 0; break;
  case 6: { const REAL b = (REAL)p1, k = (REAL)p2;
    for (j = 0; j < n; ++j) { sg[j] = k * EXP(-b * FABS(m[j] - th[j] - 1)); } break; }
  case 7: { const REAL k = (REAL)p1, B = (REAL)p2;
    for (j = 0; j < n; ++j) { REAL u = m[j] - th[j]; REAL d = k * FABS(u) + (REAL)1;
      sg[j] = (REAL)1 / (d * d) * (u > B ? (REAL)1 : (REAL)0); } break; }
  default: for (j = 0; j < n; ++j) sg[j] = pre[j]; break;
  }
}

/* ---- Leaky: mem = beta*mem + x (- reset*thr | with mem zeroed), spike = mem - thr > 0 ---- */
INL void SFX(leaky_fwd_row)(int reset, const REAL *restrict x, const REAL *restrict prev,
                           const REAL *restrict b, const REAL *restrict th,
                           REAL *restrict m, REAL *restrict s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL p = prev[j], h = th[j];
    const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
    REAL v;
    if (reset == 0) v = (b[j] * p + x[j]) - r * h;
    else if (reset == 1) v = b[j] * (((REAL)1 - r) * p) + x[j];
    else v = b[j] * p + x[j];
    m[j] = v;
    s[j] = (v - h > 0) ? (REAL)1 : (REAL)0;
  }
}

static void SFX(leaky_fwd_range)(const void *pa, int64_t i0, int64_t i1) {
  const SFX(fwd) *a = (const SFX(fwd) *)pa;
  const int64_t M = a->M;
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t t = 0; t < a->T; ++t) {
      const REAL *prev = t ? a->mem + (t - 1) * M + o : a->mem0 + o;
      const REAL *x = a->x + t * M + o;
      REAL *m = a->mem + t * M + o, *s = a->spk + t * M + o;
#define ROW(...) SFX(leaky_fwd_row)(__VA_ARGS__, x, prev, a->beta + o, a->thr + o, m, s, n)
      switch (a->reset) {
      case 0: ROW(0); break;
      case 1: ROW(1); break;
      default: ROW(2); break;
      }
    }
  }
}
#undef ROW

INL void SFX(leaky_bwd_row)(int reset, int params, const REAL *restrict gs, const REAL *restrict gm,
                           const REAL *restrict m, const REAL *restrict prev, const REAL *restrict b,
                           const REAL *restrict th, const REAL *restrict sg, const REAL *restrict anext,
                           REAL *restrict dx, REAL *restrict db, REAL *restrict dth, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL h = th[j];
    const REAL ds = gs[j] * sg[j];
    REAL c = b[j] * anext[j];
    if (reset == 1) c = (m[j] - h > 0) ? (REAL)0 : c;
    const REAL adj = gm[j] + ds + c;
    dx[j] = adj;
    if (params) {
      const REAL p = prev[j];
      const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
      db[j] += adj * (reset == 1 ? ((REAL)1 - r) * p : p);
      dth[j] -= (reset == 0) ? ds + adj * r : ds;
    }
  }
}

static void SFX(leaky_bwd_range)(const void *pa, int64_t i0, int64_t i1) {
  const SFX(bwd) *a = (const SFX(bwd) *)pa;
  const int64_t M = a->M, T = a->T;
  REAL zeros[BLK] = {0}, sg[BLK];
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t off = t * M + o;
      const REAL *m = a->mem + off;
      const REAL *prev = t ? a->mem + off - M : a->mem0 + o;
      SFX(surrogate_row)(a->kind, a->p1, a->p2, m, a->thr + o, a->sg ? a->sg + off : zeros, sg, n);
      const REAL *gs = a->gs ? a->gs + off : zeros, *gm = a->gm ? a->gm + off : zeros;
      const REAL *anext = t + 1 < T ? a->dx + off + M : zeros;
      REAL *db = a->dbeta ? a->dbeta + o : NULL, *dth = a->dthr ? a->dthr + o : NULL;
#define ROW(...) SFX(leaky_bwd_row)(__VA_ARGS__, \
    gs, gm, m, prev, a->beta + o, a->thr + o, sg, anext, a->dx + off, db, dth, n)
      ROW_BY_RESET_AND_PARAMS(a->reset, a->dbeta != NULL);
    }
    for (int64_t j = 0; j < n; ++j) {
      const REAL p = a->mem0[o + j], h = a->thr[o + j];
      const REAL keep = (a->reset == 1 && p - h > 0) ? (REAL)0 : (REAL)1;
      a->dmem0[o + j] = a->beta[o + j] * keep * a->dx[o + j];
    }
  }
}
#undef ROW

/* ---- Synaptic: syn = alpha*syn + x; mem = beta*mem + syn (- reset*thr | zeroed) ---- */
INL void SFX(syn_fwd_row)(int reset, const REAL *restrict x, const REAL *restrict ps, const REAL *restrict pm,
                         const REAL *restrict al, const REAL *restrict b, const REAL *restrict th,
                         REAL *restrict sy, REAL *restrict m, REAL *restrict s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL p = pm[j], h = th[j];
    const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
    const REAL cur = al[j] * ps[j] + x[j];
    const REAL base = b[j] * p + cur;
    REAL v;
    if (reset == 0) v = base - r * h;
    else if (reset == 1) v = base - base * r;
    else v = base;
    sy[j] = cur; m[j] = v;
    s[j] = (v - h > 0) ? (REAL)1 : (REAL)0;
  }
}

static void SFX(syn_fwd_range)(const void *pa, int64_t i0, int64_t i1) {
  const SFX(fwd) *a = (const SFX(fwd) *)pa;
  const int64_t M = a->M;
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t t = 0; t < a->T; ++t) {
      const int64_t off = t * M + o;
      const REAL *pm = t ? a->mem + off - M : a->mem0 + o, *ps = t ? a->syn + off - M : a->syn0 + o;
#define ROW(...) SFX(syn_fwd_row)(__VA_ARGS__, \
    a->x + off, ps, pm, a->alpha + o, a->beta + o, a->thr + o, a->syn + off, a->mem + off, a->spk + off, n)
      switch (a->reset) {
      case 0: ROW(0); break;
      case 1: ROW(1); break;
      default: ROW(2); break;
      }
    }
  }
}
#undef ROW

INL void SFX(syn_bwd_row)(int reset, int params,
                         const REAL *restrict gs, const REAL *restrict gsyn, const REAL *restrict gm,
                         const REAL *restrict m, const REAL *restrict pm, const REAL *restrict ps,
                         const REAL *restrict al, const REAL *restrict b, const REAL *restrict th,
                         const REAL *restrict sg, REAL *restrict acarry, const REAL *restrict snext,
                         REAL *restrict dx, REAL *restrict dal, REAL *restrict db, REAL *restrict dth, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const REAL h = th[j];
    const REAL ds = gs[j] * sg[j];
    REAL c = b[j] * acarry[j];
    if (reset == 1) c = (m[j] - h > 0) ? (REAL)0 : c;
    const REAL adj = gm[j] + ds + c;           /* d loss / d mem_t */
    const REAL p = pm[j];
    const REAL r = (p - h > 0) ? (REAL)1 : (REAL)0;
    const REAL keep = reset == 1 ? (REAL)1 - r : (REAL)1;
    const REAL sadj = gsyn[j] + keep * adj + al[j] * snext[j];   /* d loss / d syn_t */
    acarry[j] = adj;
    dx[j] = sadj;
    if (params) {
      db[j] += keep * adj * p;
      dal[j] += sadj * ps[j];
      dth[j] -= (reset == 0) ? ds + adj * r : ds;
    }
  }
}

static void SFX(syn_bwd_range)(const void *pa, int64_t i0, int64_t i1) {
  const SFX(bwd) *a = (const SFX(bwd) *)pa;
  const int64_t M = a->M, T = a->T;
  REAL zeros[BLK] = {0}, sg[BLK], acarry[BLK];
  for (int64_t o = i0; o < i1; o += BLK) {
    const int64_t n = i1 - o < BLK ? i1 - o : BLK;
    for (int64_t j = 0; j < n; ++j) acarry[j] = 0;
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t off = t * M + o;
      const REAL *m = a->mem + off;
      const REAL *pm = t ? a->mem + off - M : a->mem0 + o, *ps = t ? a->syn + off - M : a->syn0 + o;
      SFX(surrogate_row)(a->kind, a->p1, a->p2, m, a->thr + o, a->sg ? a->sg + off : zeros, sg, n);
      const REAL *gs = a->gs ? a->gs + off : zeros, *gm = a->gm ? a->gm + off : zeros;
      const REAL *gsyn = a->gsyn ? a->gsyn + off : zeros;
      const REAL *snext = t + 1 < T ? a->dx + off + M : zeros;
      REAL *db = a->dbeta ? a->dbeta + o : NULL, *dth = a->dthr ? a->dthr + o : NULL;
      REAL *dal = a->dalpha ? a->dalpha + o : NULL;
#define ROW(...) SFX(syn_bwd_row)(__VA_ARGS__, \
    gs, gsyn, gm, m, pm, ps, a->alpha + o, a->beta + o, a->thr + o, sg, acarry, snext, a->dx + off, dal, db, dth, n)
      ROW_BY_RESET_AND_PARAMS(a->reset, a->dbeta != NULL);
    }
    for (int64_t j = 0; j < n; ++j) {
      const REAL p = a->mem0[o + j], h = a->thr[o + j];
      const REAL keep = (a->reset == 1 && p - h > 0) ? (REAL)0 : (REAL)1;
      a->dmem0[o + j] = a->beta[o + j] * keep * acarry[j];
      a->dsyn0[o + j] = a->alpha[o + j] * a->dx[o + j];
    }
  }
}
#undef ROW

void SFX(cogsim_leaky_fwd)(const SFX(fwd) *a, int nthreads) { run_parallel(SFX(leaky_fwd_range), a, a->M, nthreads); }
void SFX(cogsim_leaky_bwd)(const SFX(bwd) *a, int nthreads) { run_parallel(SFX(leaky_bwd_range), a, a->M, nthreads); }
void SFX(cogsim_syn_fwd)(const SFX(fwd) *a, int nthreads) { run_parallel(SFX(syn_fwd_range), a, a->M, nthreads); }
void SFX(cogsim_syn_bwd)(const SFX(bwd) *a, int nthreads) { run_parallel(SFX(syn_bwd_range), a, a->M, nthreads); }
