// decode_persistent_k.cu: the persistent decode kernel's split-K instantiations for Q4_K_M-style files (Q4_K and Q6_K).
#include "backend/cuda/decode_persistent.cuh"

PD_KSET(pd_kset_k, PD_TS_K)
