// decode_persistent_q8.cu: the persistent decode kernel's split-K instantiations for Q8_0 files.
#include "backend/cuda/decode_persistent.cuh"

PD_KSET(pd_kset_q8, PD_TS_Q8)
