// quant.h: tensor element types, bit-exact with ggml's block layouts, and their scalar reference kernels.
//
// Every type has a traits entry: block size, bytes per block, the type activations are quantized to for
// its dot product (vec_dot_type, as ggml does: Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the
// K-quants, F16 for F16, BF16 for BF16, F32 for F32), and the scalar reference functions. The _ref kernels
// are always compiled; SIMD kernels (later) are tested against them.
#ifndef INFERNO_QUANT_H
#define INFERNO_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ggml type ids, as stored in GGUF tensor infos.
typedef enum {
    INF_TYPE_F32 = 0,
    INF_TYPE_F16 = 1,
    INF_TYPE_Q4_0 = 2,
    INF_TYPE_Q4_1 = 3,
    INF_TYPE_Q5_0 = 6,
    INF_TYPE_Q5_1 = 7,
    INF_TYPE_Q8_0 = 8,
    INF_TYPE_Q8_1 = 9,
    INF_TYPE_Q2_K = 10,
    INF_TYPE_Q3_K = 11,
    INF_TYPE_Q4_K = 12,
    INF_TYPE_Q5_K = 13,
    INF_TYPE_Q6_K = 14,
    INF_TYPE_Q8_K = 15,
    INF_TYPE_BF16 = 30,
    INF_TYPE_COUNT = 40, // upper bound of ids ggml has assigned; ids >= this are unknown
} inf_type;

typedef void (*inf_dequantize_fn)(const void *src, float *dst, int64_t n);   // n % block_size == 0
typedef void (*inf_quantize_fn)(const float *src, void *dst, int64_t n);     // n % block_size == 0
// Dot product of n elements: w of the weight type, x of its vec_dot_type. n % block_size == 0.
typedef float (*inf_vec_dot_fn)(int64_t n, const void *w, const void *x);

typedef struct {
    const char *name;      // "Q4_K", "F16", ...
    int64_t block_size;    // elements per block (1 for F32/F16/BF16)
    size_t type_size;      // bytes per block
    inf_type vec_dot_type; // type activations are converted to for vec_dot
    inf_dequantize_fn dequantize;    // reference; NULL for ids without one
    inf_quantize_fn quantize;        // reference quantizer (ggml's _ref algorithm); NULL if not provided.
                                     // For Q8_0/Q8_1/Q8_K: the activation quantizer (see below)
    inf_vec_dot_fn vec_dot;          // reference; NULL for pure activation types (Q8_1, Q8_K)
} inf_type_traits;

// Traits of a supported type, or NULL for an id that is unknown or not supported by this build.
const inf_type_traits *inf_type_get(uint32_t type);
// Name of any ggml type id, including those this build cannot run (IQ2_XXS, ...); "unknown" otherwise.
const char *inf_type_name(uint32_t type);
// Bytes of a row of n elements (n must be a multiple of the block size; returns 0 otherwise).
size_t inf_row_size(inf_type type, int64_t n);

// The quantizer llama.cpp's llama-quantize uses (without an importance matrix) to write model files of
// this type. It equals traits.quantize except for Q8_0, whose traits entry is the activation quantizer
// (round half to even, as ggml's x86 path) while files use round half away from zero. NULL for types
// without one and for the activation-only Q8_1 and Q8_K.
inf_quantize_fn inf_type_weight_quantizer(uint32_t type);

// Round to nearest, ties to even, independent of the FPU rounding mode (ggml's nearest_int): adding
// 1.5 * 2^23 pushes the fraction out of the mantissa and the addition itself rounds. |x| < 2^22.
static inline int inf_nearest_int(float x) {
    union { float f; int32_t i; } v = {.f = x + 12582912.0f};
    return (v.i & 0x007fffff) - 0x00400000;
}

// ---- half-precision conversions (IEEE binary16 and bfloat16, round to nearest even) ----
uint16_t inf_fp32_to_fp16(float f);
float inf_fp16_to_fp32(uint16_t h);
uint16_t inf_fp32_to_bf16(float f);
static inline float inf_bf16_to_fp32(uint16_t h) {
    union { uint32_t u; float f; } v = {.u = (uint32_t)h << 16};
    return v.f;
}

// ---- block layouts (ggml-common.h) ----
#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct { uint16_t d; uint8_t qs[QK4_0 / 2]; } block_q4_0;
typedef struct { uint16_t d; uint16_t m; uint8_t qs[QK4_1 / 2]; } block_q4_1;
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; } block_q5_0;
typedef struct { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; } block_q5_1;
typedef struct { uint16_t d; int8_t qs[QK8_0]; } block_q8_0;
typedef struct { uint16_t d; uint16_t s; int8_t qs[QK8_1]; } block_q8_1; // s = d * sum(qs)
typedef struct { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d; uint16_t dmin; } block_q2_K;
typedef struct { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; } block_q3_K;
typedef struct { uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K;
typedef struct {
    uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2];
} block_q5_K;
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;

_Static_assert(sizeof(block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");
_Static_assert(sizeof(block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");
_Static_assert(sizeof(block_q8_0) == 2 + QK8_0, "block_q8_0 size");
_Static_assert(sizeof(block_q8_1) == 4 + QK8_1, "block_q8_1 size");
_Static_assert(sizeof(block_q2_K) == 4 + QK_K / 16 + QK_K / 4, "block_q2_K size");
_Static_assert(sizeof(block_q3_K) == 2 + QK_K / 4 + QK_K / 8 + 12, "block_q3_K size");
_Static_assert(sizeof(block_q4_K) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_K size");
_Static_assert(sizeof(block_q5_K) == 4 + K_SCALE_SIZE + QK_K / 2 + QK_K / 8, "block_q5_K size");
_Static_assert(sizeof(block_q6_K) == 2 + QK_K / 16 + 3 * QK_K / 4, "block_q6_K size");
_Static_assert(sizeof(block_q8_K) == 4 + QK_K + QK_K / 16 * 2, "block_q8_K size");

// ---- reference kernels, one per type (names: <op>_<type>_ref) ----
void dequantize_row_q4_0_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q4_1_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q5_0_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q5_1_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q8_0_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q2_K_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q3_K_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q4_K_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q5_K_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q6_K_ref(const void *src, float *dst, int64_t n);
void dequantize_row_f16_ref(const void *src, float *dst, int64_t n);
void dequantize_row_bf16_ref(const void *src, float *dst, int64_t n);

// Activation quantizers, matching ggml's x86 rounding (round half to even) so logits agree with llama.cpp.
void quantize_row_q8_0_ref(const float *src, void *dst, int64_t n);
void quantize_row_q8_1_ref(const float *src, void *dst, int64_t n);
void quantize_row_q8_K_ref(const float *src, void *dst, int64_t n);

// Weight quantizers: ggml's quantize_row_<type>_ref algorithms (no importance matrix), bit-exact with
// the blocks llama-quantize writes. Q8_0's file quantizer is separate from its activation quantizer.
void quantize_row_q4_0_ref(const float *src, void *dst, int64_t n);
void quantize_row_q4_1_ref(const float *src, void *dst, int64_t n);
void quantize_row_q5_0_ref(const float *src, void *dst, int64_t n);
void quantize_row_q5_1_ref(const float *src, void *dst, int64_t n);
void quantize_row_q8_0_weights_ref(const float *src, void *dst, int64_t n);
void quantize_row_q2_K_ref(const float *src, void *dst, int64_t n);
void quantize_row_q3_K_ref(const float *src, void *dst, int64_t n);
void quantize_row_q4_K_ref(const float *src, void *dst, int64_t n);
void quantize_row_q5_K_ref(const float *src, void *dst, int64_t n);
void quantize_row_q6_K_ref(const float *src, void *dst, int64_t n);

// Dequantizers of the activation types (tests, debugging).
void dequantize_row_q8_1_ref(const void *src, float *dst, int64_t n);
void dequantize_row_q8_K_ref(const void *src, float *dst, int64_t n);

// Dot products, computed like ggml's generic code: integer sums per block, scaled by the block scales,
// accumulated in float (the plain float types accumulate in double as ggml's scalar path does).
float vec_dot_f32_ref(int64_t n, const void *w, const void *x);
float vec_dot_f16_ref(int64_t n, const void *w, const void *x);
float vec_dot_bf16_ref(int64_t n, const void *w, const void *x);
float vec_dot_q4_0_q8_0_ref(int64_t n, const void *w, const void *x);
float vec_dot_q4_1_q8_1_ref(int64_t n, const void *w, const void *x);
float vec_dot_q5_0_q8_0_ref(int64_t n, const void *w, const void *x);
float vec_dot_q5_1_q8_1_ref(int64_t n, const void *w, const void *x);
float vec_dot_q8_0_q8_0_ref(int64_t n, const void *w, const void *x);
float vec_dot_q2_K_q8_K_ref(int64_t n, const void *w, const void *x);
float vec_dot_q3_K_q8_K_ref(int64_t n, const void *w, const void *x);
float vec_dot_q4_K_q8_K_ref(int64_t n, const void *w, const void *x);
float vec_dot_q5_K_q8_K_ref(int64_t n, const void *w, const void *x);
float vec_dot_q6_K_q8_K_ref(int64_t n, const void *w, const void *x);

#endif // INFERNO_QUANT_H
