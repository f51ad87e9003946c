// decode_persistent_f16.cu: the persistent decode kernel's split-K instantiations for F16 files (and those the GPU converts to F16, their Q6_K matrices kept).
#include "backend/cuda/decode_persistent.cuh"

PD_KSET(pd_kset_f16, PD_TS_F16)
