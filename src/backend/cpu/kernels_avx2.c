// kernels_avx2.c: the avx2 kernel variants (placeholder: the table keeps the entries it inherits).
#include "backend/cpu/cpu_internal.h"

void inf_cpu_kernels_fill_avx2(inf_cpu_kernels *k, const inf_cpu_features *f) {
    (void)k;
    (void)f;
}
