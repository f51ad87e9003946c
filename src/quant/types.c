// types.c: the type traits table, names of every ggml type id, row sizes, and the IEEE half / bfloat16
// conversions.
//
// The traits table covers the types this build can load and run; ids ggml assigned to other formats
// (IQ*, TQ*, MXFP4, the integer types, removed Q4_2/Q4_3 and the repacked Q4_0_4_4 family) have a name for
// error messages but no traits, so inf_type_get() returns NULL for them. The conversions are portable bit
// manipulation, not F16C intrinsics: SIMD paths are another file's business.
#include "quant/quant.h"

#include <string.h>

// Names indexed by ggml type id (ggml.h enum ggml_type). NULL entries are ids ggml never assigned.
static const char *const inf_type_names[INF_TYPE_COUNT] = {
    [0] = "F32",       [1] = "F16",       [2] = "Q4_0",      [3] = "Q4_1",       [4] = "Q4_2",
    [5] = "Q4_3",      [6] = "Q5_0",      [7] = "Q5_1",      [8] = "Q8_0",       [9] = "Q8_1",
    [10] = "Q2_K",     [11] = "Q3_K",     [12] = "Q4_K",     [13] = "Q5_K",      [14] = "Q6_K",
    [15] = "Q8_K",     [16] = "IQ2_XXS",  [17] = "IQ2_XS",   [18] = "IQ3_XXS",   [19] = "IQ1_S",
    [20] = "IQ4_NL",   [21] = "IQ3_S",    [22] = "IQ2_S",    [23] = "IQ4_XS",    [24] = "I8",
    [25] = "I16",      [26] = "I32",      [27] = "I64",      [28] = "F64",       [29] = "IQ1_M",
    [30] = "BF16",     [31] = "Q4_0_4_4", [32] = "Q4_0_4_8", [33] = "Q4_0_8_8",  [34] = "TQ1_0",
    [35] = "TQ2_0",    [36] = "IQ4_NL_4_4", [37] = "IQ4_NL_4_8", [38] = "IQ4_NL_8_8", [39] = "MXFP4",
};

// Reference kernels for the plain float types live here with the conversions they wrap.
static void dequantize_row_f32_ref(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quantize_row_f32_ref(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quantize_row_f16_ref(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) {
        h[i] = inf_fp32_to_fp16(src[i]);
    }
}

static void quantize_row_bf16_ref(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) {
        h[i] = inf_fp32_to_bf16(src[i]);
    }
}

void dequantize_row_f16_ref(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = inf_fp16_to_fp32(h[i]);
    }
}

void dequantize_row_bf16_ref(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = inf_bf16_to_fp32(h[i]);
    }
}

#define TRAITS(id_, name_, bs_, size_, vdt_, deq_, q_, dot_)                                              \
    [id_] = {.name = name_, .block_size = bs_, .type_size = size_, .vec_dot_type = vdt_, .dequantize = deq_, \
             .quantize = q_, .vec_dot = dot_}

static const inf_type_traits inf_type_table[INF_TYPE_COUNT] = {
    TRAITS(INF_TYPE_F32, "F32", 1, sizeof(float), INF_TYPE_F32, dequantize_row_f32_ref, quantize_row_f32_ref,
           vec_dot_f32_ref),
    TRAITS(INF_TYPE_F16, "F16", 1, sizeof(uint16_t), INF_TYPE_F16, dequantize_row_f16_ref, quantize_row_f16_ref,
           vec_dot_f16_ref),
    TRAITS(INF_TYPE_BF16, "BF16", 1, sizeof(uint16_t), INF_TYPE_BF16, dequantize_row_bf16_ref,
           quantize_row_bf16_ref, vec_dot_bf16_ref),
    TRAITS(INF_TYPE_Q4_0, "Q4_0", QK4_0, sizeof(block_q4_0), INF_TYPE_Q8_0, dequantize_row_q4_0_ref,
           quantize_row_q4_0_ref, vec_dot_q4_0_q8_0_ref),
    TRAITS(INF_TYPE_Q4_1, "Q4_1", QK4_1, sizeof(block_q4_1), INF_TYPE_Q8_1, dequantize_row_q4_1_ref,
           quantize_row_q4_1_ref, vec_dot_q4_1_q8_1_ref),
    TRAITS(INF_TYPE_Q5_0, "Q5_0", QK5_0, sizeof(block_q5_0), INF_TYPE_Q8_0, dequantize_row_q5_0_ref,
           quantize_row_q5_0_ref, vec_dot_q5_0_q8_0_ref),
    TRAITS(INF_TYPE_Q5_1, "Q5_1", QK5_1, sizeof(block_q5_1), INF_TYPE_Q8_1, dequantize_row_q5_1_ref,
           quantize_row_q5_1_ref, vec_dot_q5_1_q8_1_ref),
    // Q8_0's quantize is the activation quantizer (it is also Q4_0/Q5_0's vec_dot type); model files use
    // inf_type_weight_quantizer(), which rounds differently.
    TRAITS(INF_TYPE_Q8_0, "Q8_0", QK8_0, sizeof(block_q8_0), INF_TYPE_Q8_0, dequantize_row_q8_0_ref,
           quantize_row_q8_0_ref, vec_dot_q8_0_q8_0_ref),
    // Activation-only types: quantized into, never dotted as the left operand.
    TRAITS(INF_TYPE_Q8_1, "Q8_1", QK8_1, sizeof(block_q8_1), INF_TYPE_Q8_1, dequantize_row_q8_1_ref,
           quantize_row_q8_1_ref, NULL),
    TRAITS(INF_TYPE_Q8_K, "Q8_K", QK_K, sizeof(block_q8_K), INF_TYPE_Q8_K, dequantize_row_q8_K_ref,
           quantize_row_q8_K_ref, NULL),
    TRAITS(INF_TYPE_Q2_K, "Q2_K", QK_K, sizeof(block_q2_K), INF_TYPE_Q8_K, dequantize_row_q2_K_ref,
           quantize_row_q2_K_ref, vec_dot_q2_K_q8_K_ref),
    TRAITS(INF_TYPE_Q3_K, "Q3_K", QK_K, sizeof(block_q3_K), INF_TYPE_Q8_K, dequantize_row_q3_K_ref,
           quantize_row_q3_K_ref, vec_dot_q3_K_q8_K_ref),
    TRAITS(INF_TYPE_Q4_K, "Q4_K", QK_K, sizeof(block_q4_K), INF_TYPE_Q8_K, dequantize_row_q4_K_ref,
           quantize_row_q4_K_ref, vec_dot_q4_K_q8_K_ref),
    TRAITS(INF_TYPE_Q5_K, "Q5_K", QK_K, sizeof(block_q5_K), INF_TYPE_Q8_K, dequantize_row_q5_K_ref,
           quantize_row_q5_K_ref, vec_dot_q5_K_q8_K_ref),
    TRAITS(INF_TYPE_Q6_K, "Q6_K", QK_K, sizeof(block_q6_K), INF_TYPE_Q8_K, dequantize_row_q6_K_ref,
           quantize_row_q6_K_ref, vec_dot_q6_K_q8_K_ref),
};

const inf_type_traits *inf_type_get(uint32_t type) {
    if (type >= INF_TYPE_COUNT || inf_type_table[type].name == NULL) {
        return NULL;
    }
    return &inf_type_table[type];
}

const char *inf_type_name(uint32_t type) {
    if (type >= INF_TYPE_COUNT || inf_type_names[type] == NULL) {
        return "unknown";
    }
    return inf_type_names[type];
}

size_t inf_row_size(inf_type type, int64_t n) {
    const inf_type_traits *t = inf_type_get((uint32_t)type);
    if (t == NULL || n < 0 || n % t->block_size != 0) {
        return 0;
    }
    return (size_t)(n / t->block_size) * t->type_size;
}

// ---- half precision ----

static uint32_t inf_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float inf_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

// Round to nearest, ties to even, on the raw bits. Overflow (|f| >= 65520, the midpoint between the
// largest half 65504 and 2^16) gives infinity; results below 2^-14 become subnormal halves; NaN stays
// NaN with its top payload bits and the quiet bit set.
uint16_t inf_fp32_to_fp16(float f) {
    uint32_t x = inf_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) {
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax < 0x38800000u) {
        // Subnormal half: value / 2^-24 rounded. For a normal float, value = mant * 2^(e - 150), so the
        // result is mant >> (126 - e) rounded; below 2^-25 (e < 102) everything rounds to zero.
        uint32_t e = ax >> 23;
        if (e < 102) {
            return sign;
        }
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; // 14..24
        uint32_t q = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) {
            q++; // may carry into 0x400, which is exactly the smallest normal half
        }
        return (uint16_t)(sign | q);
    }
    // Normal: rebias the exponent (127 -> 15) and round away 13 mantissa bits; a carry out of the
    // mantissa correctly bumps the exponent, and the overflow check above keeps it below infinity.
    uint32_t h = (ax >> 13) - (112u << 10);
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) {
        h++;
    }
    return (uint16_t)(sign | h);
}

float inf_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f) {
        return inf_bits_f32(sign | 0x7f800000u | (mant << 13));
    }
    if (exp == 0) {
        // Zero or subnormal: mant * 2^-24 is exact in float.
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return inf_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Round to nearest even like ggml (subnormals kept, not flushed); NaN is kept quiet so truncation
// cannot turn it into infinity.
uint16_t inf_fp32_to_bf16(float f) {
    uint32_t u = inf_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((u >> 16) | 0x40u);
    }
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
