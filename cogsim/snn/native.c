/* Whole-sequence LIF (snntorch.Leaky) and synaptic (snntorch.Synaptic) kernels, forward and backward,
   for float32 and float64: native_neurons.h is included once per type. The time loop runs inside a
   block of neurons that stays in cache; neuron ranges are split over threads (see
   cogsim/snn/native.py). Built by cogsim.native with -DCOGSIM_ABI. */
#include <stdlib.h>
#include <math.h>

#include "native_parallel.h"

#ifndef COGSIM_ABI
#error "build with -DCOGSIM_ABI=<n> (cogsim.native passes it)"
#endif

#define INL static inline __attribute__((always_inline))
#define BLK 512

/* Split [0, M) into nthreads ranges (multiples of 16 elements) and run fn on each. */
static void run_parallel(range_fn fn, const void *args, int64_t M, int nthreads) {
  run_parallel_aligned(fn, args, M, nthreads, 16);
}

int cogsim_snn_abi(void) { return COGSIM_ABI; }

/* ROW(reset, params) with both as compile-time constants, so each case's loop is specialised */
#define ROW_BY_RESET_AND_PARAMS(reset, params) \
  switch ((reset) * 2 + (params)) {            \
  case 0: ROW(0, 0); break;                    \
  case 1: ROW(0, 1); break;                    \
  case 2: ROW(1, 0); break;                    \
  case 3: ROW(1, 1); break;                    \
  case 4: ROW(2, 0); break;                    \
  default: ROW(2, 1); break;                   \
  }

#define CONCAT_(a, b) a##_##b
#define CONCAT(a, b) CONCAT_(a, b)

#define REAL float
#define SFX(name) CONCAT(name, f32)
#define EXP expf
#define FABS fabsf
#include "native_neurons.h"
#undef REAL
#undef SFX
#undef EXP
#undef FABS

#define REAL double
#define SFX(name) CONCAT(name, f64)
#define EXP exp
#define FABS fabs
#include "native_neurons.h"
#undef REAL
#undef SFX
#undef EXP
#undef FABS
