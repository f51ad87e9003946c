// kernels_avx512.c: the avx512 kernel variants (placeholder: the table keeps the entries it inherits).
#include "backend/cpu/cpu_internal.h"

void inf_cpu_kernels_fill_avx512(inf_cpu_kernels *k, const inf_cpu_features *f) {
    (void)k;
    (void)f;
}
