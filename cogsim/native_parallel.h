/* The one thread pool of cogsim's C kernels (cogsim/native.py builds every kernel with this header).

   Threads are started for a call and joined before it returns: nothing spins or sleeps between
   calls, so an idle kernel never takes a core from torch or from another process. The thread count
   comes from Python (cogsim.native.kernel_threads), which scales it to the work and to the cores
   this process may use. */
#ifndef COGSIM_NATIVE_PARALLEL_H
#define COGSIM_NATIVE_PARALLEL_H

#include <stdint.h>
#include <pthread.h>

#define COGSIM_MAX_THREADS 64

/* fn runs over items [i0, i1) */
typedef void (*range_fn)(const void *args, int64_t i0, int64_t i1);

typedef struct { range_fn fn; const void *args; int64_t i0, i1; } job_t;

static inline void *job_main(void *p) {
  job_t *j = (job_t *)p;
  j->fn(j->args, j->i0, j->i1);
  return NULL;
}

/* Split [0, M) into up to nthreads ranges of a multiple of `align` items and run fn on each, the
   first range on the calling thread. nthreads is clamped to [1, COGSIM_MAX_THREADS]; a thread that
   cannot be started runs its range on the caller. */
static inline void run_parallel_aligned(range_fn fn, const void *args, int64_t M, int nthreads, int64_t align) {
  if (nthreads > COGSIM_MAX_THREADS) nthreads = COGSIM_MAX_THREADS;
  if (nthreads < 1) nthreads = 1;
  int64_t per = (M + nthreads - 1) / nthreads;
  if (align > 1) per = (per + align - 1) / align * align;
  if (nthreads == 1 || per >= M) { fn(args, 0, M); return; }
  pthread_t th[COGSIM_MAX_THREADS];
  job_t jobs[COGSIM_MAX_THREADS];
  int started[COGSIM_MAX_THREADS];
  int n = 0;
  for (int64_t i0 = per; i0 < M && n < COGSIM_MAX_THREADS - 1; i0 += per, ++n) {
    jobs[n].fn = fn; jobs[n].args = args; jobs[n].i0 = i0; jobs[n].i1 = i0 + per < M ? i0 + per : M;
    started[n] = pthread_create(&th[n], NULL, job_main, &jobs[n]) == 0;
    if (!started[n]) job_main(&jobs[n]);
  }
  fn(args, 0, per);
  for (int k = 0; k < n; ++k) if (started[k]) pthread_join(th[k], NULL);
}

/* Run fn(args, w, w + 1) once for each worker w in [0, nthreads): for kernels that keep per-worker
   scratch and take their items from a shared counter themselves. */
static inline void run_workers(range_fn fn, const void *args, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  run_parallel_aligned(fn, args, nthreads, nthreads, 1);
}

/* Items handed out in chunks from a shared counter, so that a thread waiting for a core (a loaded
   machine) delays at most one chunk instead of a fixed share of the work. */
typedef struct { range_fn fn; const void *args; int64_t M, chunk, next; } dynamic_t;

static inline void dynamic_worker(const void *p, int64_t w0, int64_t w1) {
  (void)w0; (void)w1;
  dynamic_t *d = (dynamic_t *)(uintptr_t)p;  /* the counter is the one shared, written field */
  for (;;) {
    const int64_t i0 = __atomic_fetch_add(&d->next, d->chunk, __ATOMIC_RELAXED);
    if (i0 >= d->M) break;
    d->fn(d->args, i0, i0 + d->chunk < d->M ? i0 + d->chunk : d->M);
  }
}

/* Run fn over [0, M) in chunks of `chunk` items on up to nthreads threads. */
static inline void run_dynamic(range_fn fn, const void *args, int64_t M, int64_t chunk, int nthreads) {
  if (chunk < 1) chunk = 1;
  if ((int64_t)nthreads > (M + chunk - 1) / chunk) nthreads = (int)((M + chunk - 1) / chunk);
  if (nthreads <= 1) { if (M > 0) fn(args, 0, M); return; }
  dynamic_t d = {fn, args, M, chunk, 0};
  run_workers(dynamic_worker, &d, nthreads);
}

#endif
