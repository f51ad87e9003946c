// decode_persistent_q4_0.cu: the persistent decode kernel's split-K instantiations for Q4_0 files (Q8_0 or Q6_K heads).
#include "backend/cuda/decode_persistent.cuh"

PD_KSET(pd_kset_q4_0, PD_TS_Q4_0)
