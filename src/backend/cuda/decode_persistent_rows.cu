// decode_persistent_rows.cu: the persistent decode kernel's instantiations for every weight type by rows
// (no column copies: INFERNO_CUDA_PD_SPLITK=0 or declined) and with the weight ring (INFERNO_CUDA_PD_RING=1),
// and the profiled long form for head size 128.
#include "backend/cuda/decode_persistent.cuh"

const pd_fn_t pd_k_rows[2][2] = {
    {k_decode_persistent<false, PD_ALL, false, false, 0>, k_decode_persistent<false, PD_ALL, false, true, 0>},
    {k_decode_persistent<true, PD_ALL, false, false, 0>, k_decode_persistent<true, PD_ALL, false, true, 0>}};
const pd_fn_t pd_k_hd128_prof = k_decode_persistent<false, PD_ALL, true, true, 2>;
