// decode_persistent_all.cu: the persistent decode kernel's split-K instantiations for every weight type.
#include "backend/cuda/decode_persistent.cuh"

PD_KSET(pd_kset_all, PD_ALL)
