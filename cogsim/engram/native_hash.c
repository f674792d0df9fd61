/* The Engram n-gram hash on the CPU: one fused pass per position, floor modulos by precomputed
   reciprocals (see cogsim/engram/native_hash.py for the proofs). Built by cogsim.native with
   -DCOGSIM_ABI. */
#include "native_parallel.h"

#ifndef COGSIM_ABI
#error "build with -DCOGSIM_ABI=<n> (cogsim.native passes it)"
#endif

#include <string.h>
typedef unsigned __int128 u128;

int cogsim_engram_hash_abi(void) { return COGSIM_ABI; }

/* Floor modulo of the int64 whose bits are u by p (2 <= p < 2**63): m, s = l - 1 and c = 2**64 mod p
   are the precomputed reciprocal of p (proof: docs/design.md §5.1.1). */
static inline __attribute__((always_inline)) int64_t floor_mod(uint64_t u, uint64_t m, uint64_t p, uint64_t c,
                                                                 unsigned s) {
  const uint64_t t = (uint64_t)(((u128)u * m) >> 64);
  const uint64_t q = (t + ((u - t) >> 1)) >> s;
  const uint64_t neg = (uint64_t)((int64_t)u >> 63);   /* all ones when the int64 is negative */
  int64_t r = (int64_t)(u - q * p) - (int64_t)(c & neg);  /* in (-p, p) */
  return r + (int64_t)(p & (uint64_t)(r >> 63));
}

/* Floor modulo for 2**13 <= p <= 2**31 by a float64 quotient (proof: docs/design.md §5.1.1): the
   rounded quotient q sits in the low word of z + 1.5*2**52; the remainder u - q*p is in [-p, p), so
   its low 32 bits d determine it, and min(d, d + p) in uint32 is the floor modulo. Written in 32-bit
   lanes so that the compiler vectorises the loop over heads. */
static inline __attribute__((always_inline)) void floor_mod_heads_f64(uint64_t u, const double *restrict inv,
                                                                        const uint32_t *restrict p,
                                                                        int64_t *restrict out, const int H) {
  const double x = (double)(int64_t)u, magic = 6755399441055744.0;
  for (int h0 = 0; h0 < H; h0 += 16) {
    const int n = H - h0 < 16 ? H - h0 : 16;
    uint32_t r[16];
    for (int h = 0; h < n; ++h) {
      const double z = x * inv[h0 + h] + magic;
      uint64_t zb; memcpy(&zb, &z, 8);
      const uint32_t d = (uint32_t)u - (uint32_t)zb * p[h0 + h], e = d + p[h0 + h];
      r[h] = d < e ? d : e;
    }
    for (int h = 0; h < n; ++h) out[h0 + h] = (int64_t)r[h];
  }
}

typedef struct {
  const int64_t *ids; int64_t sb, st, B, T; uint64_t pad;
  int L, N, H, f64;                             /* layers, max n-gram order, heads per order, f64 path */
  const uint64_t *mult;                         /* [L][N]: multiplier of the token k steps back */
  const uint64_t *magic, *prime, *wrap;         /* [L][(N-1)*H]: reciprocals of the primes */
  const uint8_t *shift;
  const double *inv; const uint32_t *prime32;   /* [L][(N-1)*H]: the f64 path's constants */
  int64_t *out;                                 /* [L][B*T][(N-1)*H] */
} hash_args;

/* Positions [i0, i1) in order (b, t). Inlined with H a constant for common head counts, so that the
   loop over heads unrolls into whole vectors; fields are copied to locals so stores cannot alias them. */
static inline __attribute__((always_inline)) void hash_positions(const hash_args *a, int64_t i0, int64_t i1,
                                                                   const int H, const int f64) {
  const int N = a->N, L = a->L, HL = (N - 1) * H;
  const int64_t T = a->T, BT = a->B * a->T, sb = a->sb, st = a->st;
  const uint64_t pad = a->pad;
  const int64_t *restrict ids = a->ids;
  const uint64_t *restrict mults = a->mult, *restrict magic = a->magic, *restrict prime = a->prime,
                 *restrict wrap = a->wrap;
  const uint8_t *restrict shift = a->shift;
  const double *restrict inv = a->inv;
  const uint32_t *restrict prime32 = a->prime32;
  int64_t *restrict out = a->out;
  int64_t b = i0 / T, t = i0 % T;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t *row = ids + b * sb;
    for (int l = 0; l < L; ++l) {
      const uint64_t *mult = mults + (int64_t)l * N;
      const int64_t c0 = (int64_t)l * HL;
      int64_t *o = out + ((int64_t)l * BT + i) * HL;
      uint64_t mix = (uint64_t)row[t * st] * mult[0];
      for (int n = 1; n < N; ++n) {               /* order n + 1 adds the token n steps back */
        const uint64_t tok = t >= n ? (uint64_t)row[(t - n) * st] : pad;
        mix ^= tok * mult[n];
        const int64_t j0 = c0 + (int64_t)(n - 1) * H;
        int64_t *on = o + (n - 1) * H;
        if (f64) {
          floor_mod_heads_f64(mix, inv + j0, prime32 + j0, on, H);
        } else {
          for (int h = 0; h < H; ++h)
            on[h] = floor_mod(mix, magic[j0 + h], prime[j0 + h], wrap[j0 + h], shift[j0 + h]);
        }
      }
    }
    if (++t == T) { t = 0; ++b; }
  }
}

static void hash_range(const void *pa, int64_t i0, int64_t i1) {
  const hash_args *a = (const hash_args *)pa;
  if (!a->f64) { hash_positions(a, i0, i1, a->H, 0); return; }
  switch (a->H) {
  case 1: hash_positions(a, i0, i1, 1, 1); break;
  case 2: hash_positions(a, i0, i1, 2, 1); break;
  case 4: hash_positions(a, i0, i1, 4, 1); break;
  case 8: hash_positions(a, i0, i1, 8, 1); break;
  case 16: hash_positions(a, i0, i1, 16, 1); break;
  default: hash_positions(a, i0, i1, a->H, 1); break;
  }
}

void cogsim_engram_hash(const int64_t *ids, int64_t B, int64_t T, int64_t sb, int64_t st, int64_t pad,
                        int L, int N, int H, const uint64_t *mult, const uint64_t *magic,
                        const uint64_t *prime, const uint64_t *wrap, const uint8_t *shift, const double *inv,
                        const uint32_t *prime32, int64_t *out, int nthreads) {
  hash_args a = {ids, sb, st, B, T, (uint64_t)pad, L, N, H, inv != NULL, mult, magic, prime, wrap, shift, inv,
                 prime32, out};
  const int64_t per_position = (int64_t)L * (N - 1) * H;
  /* chunks of ~16k results from a shared counter (a thread waiting for a core delays one chunk) */
  run_dynamic(hash_range, &a, B * T, per_position >= 16384 ? 1 : 16384 / per_position, nthreads);
}

/* The same floor modulos over a flat array, for tests: the reciprocal, or (inv != 0) the f64 path. */
void cogsim_engram_floor_mod(const int64_t *x, int64_t n, uint64_t m, uint64_t p, uint64_t c, int s, double inv,
                             int64_t *out) {
  const uint32_t p32 = (uint32_t)p;
  for (int64_t i = 0; i < n; ++i) {
    if (inv != 0) floor_mod_heads_f64((uint64_t)x[i], &inv, &p32, out + i, 1);
    else out[i] = floor_mod((uint64_t)x[i], m, p, c, (unsigned)s);
  }
}
