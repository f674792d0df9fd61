/* Row gather for Engram tables with software prefetch (see cogsim/engram/native_gather.py).
   Built by cogsim.native with -DCOGSIM_ABI. */
#include <stdint.h>
#include <string.h>

#ifndef COGSIM_ABI
#error "build with -DCOGSIM_ABI=<n> (cogsim.native passes it)"
#endif

int cogsim_engram_gather_abi(void) { return COGSIM_ABI; }

void cogsim_engram_gather(const char *w, const int64_t *idx, int64_t n, int64_t row_bytes, char *out, int ahead) {
  for (int64_t i = 0; i < n; ++i) {
    if (i + ahead < n) {
      const char *p = w + idx[i + ahead] * row_bytes;
      for (int64_t o = 0; o < row_bytes; o += 64) __builtin_prefetch(p + o, 0, 0);
    }
    memcpy(out + i * row_bytes, w + idx[i] * row_bytes, (size_t)row_bytes);
  }
}
