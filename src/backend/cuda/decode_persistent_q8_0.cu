// decode_persistent_q8_0.cu: the persistent decode kernel's split-K instantiations for Q8_0 layers with a Q6_K head.
#include "backend/cuda/decode_persistent.cuh"

PD_KSET(pd_kset_q8_0, PD_TS_Q8_0)
