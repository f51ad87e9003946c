// test_quant.c: the tensor-type module: traits and names, fp16/bf16 conversions, dequantization of
// handcrafted blocks with hand-computed values, the activation quantizers, and the reference dot products
// against dequantize-then-multiply on random data.
//
// With the shared micro models present it also checks real files: every 2-D tensor of each llama-quantize
// --pure output dequantizes close to the F32 original, and the reference weight quantizers reproduce
// llama-quantize's blocks bit for bit.
//
// Handcrafted blocks pin the bit layouts (nibble order, Q5 high bits, the packed K scales, Q6_K's ql/qh
// split, Q3_K's hmask and signed scales) with values worked out by hand, not by a second copy of the
// decoding code.
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "test.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// ---- helpers ----

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static void fill_nan(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        p[i] = NAN;
    }
}

// ---- traits and names ----

static void test_traits(void) {
    static const struct {
        inf_type t;
        const char *name;
        int64_t bs;
        size_t size;
        inf_type vdt;
    } want[] = {
        {INF_TYPE_F32, "F32", 1, 4, INF_TYPE_F32},       {INF_TYPE_F16, "F16", 1, 2, INF_TYPE_F16},
        {INF_TYPE_BF16, "BF16", 1, 2, INF_TYPE_BF16},    {INF_TYPE_Q4_0, "Q4_0", 32, 18, INF_TYPE_Q8_0},
        {INF_TYPE_Q4_1, "Q4_1", 32, 20, INF_TYPE_Q8_1},  {INF_TYPE_Q5_0, "Q5_0", 32, 22, INF_TYPE_Q8_0},
        {INF_TYPE_Q5_1, "Q5_1", 32, 24, INF_TYPE_Q8_1},  {INF_TYPE_Q8_0, "Q8_0", 32, 34, INF_TYPE_Q8_0},
        {INF_TYPE_Q8_1, "Q8_1", 32, 36, INF_TYPE_Q8_1},  {INF_TYPE_Q2_K, "Q2_K", 256, 84, INF_TYPE_Q8_K},
        {INF_TYPE_Q3_K, "Q3_K", 256, 110, INF_TYPE_Q8_K}, {INF_TYPE_Q4_K, "Q4_K", 256, 144, INF_TYPE_Q8_K},
        {INF_TYPE_Q5_K, "Q5_K", 256, 176, INF_TYPE_Q8_K}, {INF_TYPE_Q6_K, "Q6_K", 256, 210, INF_TYPE_Q8_K},
        {INF_TYPE_Q8_K, "Q8_K", 256, 292, INF_TYPE_Q8_K},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const inf_type_traits *t = inf_type_get(want[i].t);
        CHECK_MSG(t != NULL, "type %d", (int)want[i].t);
        if (!t) {
            continue;
        }
        CHECK_STR(t->name, want[i].name);
        CHECK_STR(inf_type_name(want[i].t), want[i].name);
        CHECK_EQ_INT(t->block_size, want[i].bs);
        CHECK_EQ_INT(t->type_size, want[i].size);
        CHECK_EQ_INT(t->vec_dot_type, want[i].vdt);
        CHECK(t->dequantize != NULL);
        bool activation_only = want[i].t == INF_TYPE_Q8_1 || want[i].t == INF_TYPE_Q8_K;
        CHECK(activation_only ? t->vec_dot == NULL : t->vec_dot != NULL);
        // The vec_dot type must itself be able to quantize activations.
        const inf_type_traits *v = inf_type_get(t->vec_dot_type);
        CHECK(v != NULL && v->quantize != NULL && v->block_size <= t->block_size &&
              t->block_size % v->block_size == 0);
    }
    CHECK_STR(inf_type_name(16), "IQ2_XXS");
    CHECK_STR(inf_type_name(23), "IQ4_XS");
    CHECK_STR(inf_type_name(39), "MXFP4");
    CHECK_STR(inf_type_name(40), "unknown");
    CHECK_STR(inf_type_name(0xFFFFFFFFu), "unknown");
    CHECK(inf_type_get(16) == NULL);
    CHECK(inf_type_get(4) == NULL);
    CHECK(inf_type_get(40) == NULL);
    CHECK(inf_type_get(1000) == NULL);
    CHECK_EQ_INT(inf_row_size(INF_TYPE_Q4_K, 4096), 16 * 144);
    CHECK_EQ_INT(inf_row_size(INF_TYPE_Q4_0, 64), 36);
    CHECK_EQ_INT(inf_row_size(INF_TYPE_F16, 7), 14);
    CHECK_EQ_INT(inf_row_size(INF_TYPE_Q4_K, 100), 0);
    CHECK_EQ_INT(inf_row_size((inf_type)16, 256), 0);
}

// ---- fp16 / bf16 ----

static void test_fp16(void) {
    CHECK_EQ_INT(inf_fp32_to_fp16(1.0f), 0x3C00);
    CHECK_EQ_INT(inf_fp32_to_fp16(-2.0f), 0xC000);
    CHECK_EQ_INT(inf_fp32_to_fp16(0.0f), 0x0000);
    CHECK_EQ_INT(inf_fp32_to_fp16(-0.0f), 0x8000);
    CHECK_EQ_INT(inf_fp32_to_fp16(65504.0f), 0x7BFF);
    CHECK_EQ_INT(inf_fp32_to_fp16(65519.99f), 0x7BFF);
    CHECK_EQ_INT(inf_fp32_to_fp16(65520.0f), 0x7C00); // tie between 65504 (odd) and 2^16: to even = inf
    CHECK_EQ_INT(inf_fp32_to_fp16(1e6f), 0x7C00);
    CHECK_EQ_INT(inf_fp32_to_fp16(-1e6f), 0xFC00);
    CHECK_EQ_INT(inf_fp32_to_fp16(INFINITY), 0x7C00);
    CHECK_EQ_INT(inf_fp32_to_fp16(-INFINITY), 0xFC00);
    uint16_t hn = inf_fp32_to_fp16(NAN);
    CHECK((hn & 0x7C00) == 0x7C00 && (hn & 0x03FF) != 0);
    uint16_t hs = inf_fp32_to_fp16(bits_f32(0x7F800001u)); // signalling NaN with a low payload
    CHECK((hs & 0x7C00) == 0x7C00 && (hs & 0x03FF) != 0);
    // Ties to even in the normal range: 1 + 2^-11 lies halfway between 0x3C00 and 0x3C01.
    CHECK_EQ_INT(inf_fp32_to_fp16(1.0f + 0x1p-11f), 0x3C00);
    CHECK_EQ_INT(inf_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02);
    CHECK_EQ_INT(inf_fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
    CHECK_EQ_INT(inf_fp32_to_fp16(0.1f), 0x2E66);
    CHECK_EQ_INT(inf_fp32_to_fp16(2047.0f + 0.5f), 0x6800); // 2047.5 -> 2048 (mantissa carry)
    // Subnormals: steps of 2^-24.
    CHECK_EQ_INT(inf_fp32_to_fp16(0x1p-24f), 0x0001);
    CHECK_EQ_INT(inf_fp32_to_fp16(0x1p-25f), 0x0000);      // tie to even (0)
    CHECK_EQ_INT(inf_fp32_to_fp16(0x1.0002p-25f), 0x0001); // just above the tie
    CHECK_EQ_INT(inf_fp32_to_fp16(3 * 0x1p-25f), 0x0002);  // 1.5 ulp: tie to even (2)
    CHECK_EQ_INT(inf_fp32_to_fp16(5 * 0x1p-25f), 0x0002);  // 2.5 ulp: tie to even (2)
    CHECK_EQ_INT(inf_fp32_to_fp16(-0x1p-24f), 0x8001);
    CHECK_EQ_INT(inf_fp32_to_fp16(1023 * 0x1p-24f), 0x03FF);
    CHECK_EQ_INT(inf_fp32_to_fp16(0x1p-14f - 0x1p-25f), 0x0400); // tie between 0x3FF and 0x400
    CHECK_EQ_INT(inf_fp32_to_fp16(0x1p-14f), 0x0400);
    CHECK_EQ_INT(inf_fp32_to_fp16(1e-10f), 0x0000);
    CHECK_EQ_INT(inf_fp32_to_fp16(bits_f32(0x00000001u)), 0x0000); // float subnormal

    CHECK(inf_fp16_to_fp32(0x3C00) == 1.0f);
    CHECK(inf_fp16_to_fp32(0x3555) == 0.333251953125f);
    CHECK(inf_fp16_to_fp32(0x0001) == 0x1p-24f);
    CHECK(inf_fp16_to_fp32(0x03FF) == 1023 * 0x1p-24f);
    CHECK(inf_fp16_to_fp32(0x7BFF) == 65504.0f);
    CHECK(f32_bits(inf_fp16_to_fp32(0x8000)) == 0x80000000u);
    CHECK(isinf(inf_fp16_to_fp32(0x7C00)) && inf_fp16_to_fp32(0x7C00) > 0);
    CHECK(isinf(inf_fp16_to_fp32(0xFC00)) && inf_fp16_to_fp32(0xFC00) < 0);
    CHECK(isnan(inf_fp16_to_fp32(0x7E00)));
    CHECK(isnan(inf_fp16_to_fp32(0x7C01)));

    // Every non-NaN half survives the round trip; every value halfway between two consecutive positive
    // halves rounds to the even one.
    int bad_rt = 0, bad_tie = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = inf_fp16_to_fp32((uint16_t)h);
        if (isnan(f)) {
            continue;
        }
        if (inf_fp32_to_fp16(f) != h) {
            bad_rt++;
        }
        if (h < 0x7BFF) {
            double mid = ((double)f + (double)inf_fp16_to_fp32((uint16_t)(h + 1))) / 2;
            uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
            if (inf_fp32_to_fp16((float)mid) != want) { // mid is exact in float (needs 12 bits)
                bad_tie++;
            }
        }
    }
    CHECK_EQ_INT(bad_rt, 0);
    CHECK_EQ_INT(bad_tie, 0);
}

static void test_bf16(void) {
    CHECK_EQ_INT(inf_fp32_to_bf16(1.0f), 0x3F80);
    CHECK_EQ_INT(inf_fp32_to_bf16(-2.0f), 0xC000);
    CHECK_EQ_INT(inf_fp32_to_bf16(bits_f32(0x3F808000u)), 0x3F80); // tie, even below
    CHECK_EQ_INT(inf_fp32_to_bf16(bits_f32(0x3F818000u)), 0x3F82); // tie, even above
    CHECK_EQ_INT(inf_fp32_to_bf16(bits_f32(0x3F808001u)), 0x3F81);
    CHECK_EQ_INT(inf_fp32_to_bf16(bits_f32(0x3F807FFFu)), 0x3F80);
    CHECK_EQ_INT(inf_fp32_to_bf16(INFINITY), 0x7F80);
    CHECK_EQ_INT(inf_fp32_to_bf16(-INFINITY), 0xFF80);
    CHECK_EQ_INT(inf_fp32_to_bf16(bits_f32(0x7F7FFFFFu)), 0x7F80); // FLT_MAX rounds up to inf
    CHECK_EQ_INT(inf_fp32_to_bf16(bits_f32(0x00018000u)), 0x0002); // subnormal tie, kept (not flushed)
    CHECK_EQ_INT(inf_fp32_to_bf16(bits_f32(0x00010000u)), 0x0001);
    uint16_t n1 = inf_fp32_to_bf16(bits_f32(0x7F800001u)); // NaN whose payload is all in the low half
    CHECK((n1 & 0x7F80) == 0x7F80 && (n1 & 0x007F) != 0);
    CHECK(isnan(inf_bf16_to_fp32(inf_fp32_to_bf16(NAN))));
    CHECK(inf_bf16_to_fp32(0x3F80) == 1.0f);
    CHECK(inf_bf16_to_fp32(0x4049) == 3.140625f);
}

// ---- handcrafted blocks ----

static void test_block_q4_0(void) {
    block_q4_0 b;
    memset(b.qs, 0x88, sizeof(b.qs)); // 8 - 8 = 0 everywhere
    b.d = 0x3800;                     // 0.5
    b.qs[0] = 0x9F;                   // element 0 = (15-8)*0.5, element 16 = (9-8)*0.5
    b.qs[15] = 0x08;                  // element 15 = 0, element 31 = (0-8)*0.5
    b.qs[3] = 0x83;                   // element 3 = (3-8)*0.5 = -2.5
    float y[32];
    fill_nan(y, 32);
    dequantize_row_q4_0_ref(&b, y, 32);
    CHECK(y[0] == 3.5f);
    CHECK(y[16] == 0.5f);
    CHECK(y[15] == 0.0f);
    CHECK(y[31] == -4.0f);
    CHECK(y[3] == -2.5f);
    CHECK(y[19] == 0.0f);
    CHECK(y[7] == 0.0f);
}

static void test_block_q4_1(void) {
    block_q4_1 b;
    memset(b.qs, 0, sizeof(b.qs));
    b.d = 0x3400; // 0.25
    b.m = 0xBC00; // -1
    b.qs[1] = 0x3A;
    float y[32];
    fill_nan(y, 32);
    dequantize_row_q4_1_ref(&b, y, 32);
    CHECK(y[1] == 1.5f);   // 10*0.25 - 1
    CHECK(y[17] == -0.25f); // 3*0.25 - 1
    CHECK(y[0] == -1.0f);
    CHECK(y[31] == -1.0f);
}

static void test_block_q5_0(void) {
    block_q5_0 b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3C00; // 1
    // qh bits 0, 17 and 31 set (little-endian 32-bit word).
    b.qh[0] = 0x01;
    b.qh[2] = 0x02;
    b.qh[3] = 0x80;
    b.qs[1] = 0xF5;
    b.qs[15] = 0x70;
    float y[32];
    fill_nan(y, 32);
    dequantize_row_q5_0_ref(&b, y, 32);
    CHECK(y[0] == 0.0f);    // (0|16) - 16
    CHECK(y[16] == -16.0f); // bit 16 clear
    CHECK(y[1] == -11.0f);  // 5 - 16
    CHECK(y[17] == 15.0f);  // (15|16) - 16
    CHECK(y[15] == -16.0f);
    CHECK(y[31] == 7.0f); // (7|16) - 16
    CHECK(y[2] == -16.0f);
}

static void test_block_q5_1(void) {
    block_q5_1 b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3800; // 0.5
    b.m = 0x4000; // 2
    b.qh[0] = 0x20; // bit 5
    b.qs[5] = 0x21;
    float y[32];
    fill_nan(y, 32);
    dequantize_row_q5_1_ref(&b, y, 32);
    CHECK(y[5] == 10.5f); // (1|16)*0.5 + 2
    CHECK(y[21] == 3.0f); // 2*0.5 + 2
    CHECK(y[0] == 2.0f);
    CHECK(y[31] == 2.0f);
}

static void test_block_q8_0(void) {
    block_q8_0 b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3000; // 0.125
    b.qs[3] = -100;
    b.qs[31] = 127;
    float y[32];
    fill_nan(y, 32);
    dequantize_row_q8_0_ref(&b, y, 32);
    CHECK(y[3] == -12.5f);
    CHECK(y[31] == 15.875f);
    CHECK(y[0] == 0.0f);
}

static void test_block_q2_K(void) {
    block_q2_K b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3C00;    // 1
    b.dmin = 0x3800; // 0.5
    b.scales[0] = 0x23;  // sub 0: scale 3, min 2
    b.scales[1] = 0x01;  // sub 1: scale 1, min 0
    b.scales[2] = 0x12;  // sub 2: scale 2, min 1
    b.scales[4] = 0x31;  // sub 4: scale 1, min 3
    b.scales[6] = 0x04;  // sub 6: scale 4, min 0
    b.scales[9] = 0xF5;  // sub 9: scale 5, min 15
    b.scales[15] = 0x72; // sub 15: scale 2, min 7
    // Byte 0 feeds elements 0, 32, 64, 96 (2 bits each, low bits first) = 0, 1, 2, 3.
    b.qs[0] = 0xE4;
    b.qs[16] = 0x03; // element 16 (sub 1) = 3
    b.qs[49] = 0x40; // second half, byte 16+1, bits 6-7: element 128 + 96 + 16 + 1 = 241 (sub 15) = 1
    float y[256];
    fill_nan(y, 256);
    dequantize_row_q2_K_ref(&b, y, 256);
    CHECK(y[0] == -1.0f);  // 3*0 - 0.5*2
    CHECK(y[1] == -1.0f);
    CHECK(y[32] == 1.5f);  // 2*1 - 0.5*1
    CHECK(y[33] == -0.5f);
    CHECK(y[64] == 0.5f);  // 1*2 - 0.5*3
    CHECK(y[65] == -1.5f);
    CHECK(y[96] == 12.0f); // 4*3
    CHECK(y[16] == 3.0f);
    CHECK(y[17] == 0.0f);
    CHECK(y[241] == -1.5f); // 2*1 - 0.5*7
    CHECK(y[240] == -3.5f);
    CHECK(y[145] == -7.5f); // sub 9, q = 0
    CHECK(y[128] == 0.0f);  // sub 8: scale 0, min 0
}

static void test_block_q3_K(void) {
    block_q3_K b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3800; // 0.5
    // 6-bit scales r_i (value r_i - 32). Every scale is 32 (value 0) except r_0 = 33 (1), r_5 = 0 (-32),
    // r_10 = 63 (31), r_15 = 20 (-12). Low nibbles: bytes 0-7 low nibble for i < 8, high nibble of byte
    // i-8 for i >= 8. High 2 bits: byte 8 + i%4, bits 2*(i/4): default 2 in every field = 0xAA.
    const uint8_t scales[12] = {0x01, 0, 0xF0, 0, 0, 0, 0, 0x40, 0xAA, 0xA2, 0xBA, 0x6A};
    memcpy(b.scales, scales, 12);
    b.qs[0] = 0x03;
    b.hmask[0] = 0x01; // element 0: 3 with high bit set -> 3
    b.qs[1] = 0x02;    // element 1: 2 with high bit clear -> -2
    b.qs[16] = 0x10;   // bits 4-5: element 64 + 16 = 80 (sub 5): 1 - 4 = -3
    b.qs[33] = 0x0C;   // second half, byte 1, bits 2-3: element 128 + 32 + 1 = 161 (sub 10)
    b.hmask[1] = 0x20; // bit 5 = second half, shift 1 -> element 161 has its high bit: 3
    b.qs[63] = 0x80;   // second half, byte 31, bits 6-7: element 255 (sub 15): 2 - 4 = -2
    float y[256];
    fill_nan(y, 256);
    dequantize_row_q3_K_ref(&b, y, 256);
    CHECK(y[0] == 1.5f);    // 0.5 * 1 * 3
    CHECK(y[1] == -1.0f);   // 0.5 * 1 * -2
    CHECK(y[2] == -2.0f);   // 0.5 * 1 * -4
    CHECK(y[80] == 48.0f);  // 0.5 * -32 * -3
    CHECK(y[81] == 64.0f);  // 0.5 * -32 * -4
    CHECK(y[161] == 46.5f); // 0.5 * 31 * 3
    CHECK(y[160] == -62.0f);
    CHECK(y[255] == 12.0f); // 0.5 * -12 * -2
    CHECK(y[254] == 24.0f);
    CHECK(y[16] == 0.0f); // sub 1: scale 0
}

// Shared by Q4_K and Q5_K: (scale, min) pairs 0 = (10, 3), 5 = (45, 50), the rest zero. Pair 5 takes
// its low 4 bits from byte 9 (scale low nibble 13, min high nibble 2) and its top 2 bits from bits 6-7 of
// byte 1 (scale: 45 >> 4 = 2) and byte 5 (min: 50 >> 4 = 3).
static const uint8_t k4_scales[12] = {10, 0x80, 0, 0, 3, 0xC0, 0, 0, 0, 0x2D, 0, 0};

static void test_block_q4_K(void) {
    block_q4_K b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3C00;    // 1
    b.dmin = 0x3800; // 0.5
    memcpy(b.scales, k4_scales, 12);
    b.qs[0] = 0x07;  // element 0 (sub 0, low nibble) = 7
    b.qs[67] = 0xF0; // bytes 64..95 feed subs 4 (low) and 5 (high): element 160 + 3 = 15
    float y[256];
    fill_nan(y, 256);
    dequantize_row_q4_K_ref(&b, y, 256);
    CHECK(y[0] == 68.5f);  // 10*7 - 0.5*3
    CHECK(y[5] == -1.5f);
    CHECK(y[32] == 0.0f);  // sub 1
    CHECK(y[163] == 650.0f); // 45*15 - 0.5*50
    CHECK(y[160] == -25.0f);
    CHECK(y[131] == 0.0f); // sub 4, low nibble of byte 67 = 0, scale 0
}

static void test_block_q5_K(void) {
    block_q5_K b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3C00;
    b.dmin = 0x3800;
    memcpy(b.scales, k4_scales, 12);
    b.qs[0] = 0x07;
    b.qs[67] = 0xF0;
    b.qh[0] = 0x01; // element 0 (sub 0) gets 16
    b.qh[3] = 0x20; // element 32*5 + 3 = 163 gets 16
    float y[256];
    fill_nan(y, 256);
    dequantize_row_q5_K_ref(&b, y, 256);
    CHECK(y[0] == 228.5f);    // 10*23 - 1.5
    CHECK(y[3] == -1.5f);
    CHECK(y[163] == 1370.0f); // 45*31 - 25
    CHECK(y[160] == -25.0f);
    CHECK(y[35] == 0.0f);
}

static void test_block_q6_K(void) {
    block_q6_K b;
    memset(&b, 0, sizeof(b));
    b.d = 0x3800; // 0.5
    b.ql[0] = 0x5A; // element 0 low 4 = 10, element 64 low 4 = 5
    b.qh[0] = 0xE4; // high 2 bits: element 0 = 0, 32 = 1, 64 = 2, 96 = 3
    b.scales[0] = -3;
    b.scales[2] = 7;
    b.scales[4] = 100;
    b.scales[6] = -128;
    b.ql[113] = 0x0F; // second half, byte 32 + 17: element 128 + 32 + 17 = 177 low 4 = 15
    b.qh[49] = 0x0C;  // its high bits (bits 2-3 of qh[32 + 17]) = 3
    b.scales[11] = 2; // second half, l = 17 -> 8 + 1 + 2*1
    float y[256];
    fill_nan(y, 256);
    dequantize_row_q6_K_ref(&b, y, 256);
    CHECK(y[0] == 33.0f);     // 0.5 * -3 * (10 - 32)
    CHECK(y[32] == -56.0f);   // 0.5 * 7 * (16 - 32)
    CHECK(y[64] == 250.0f);   // 0.5 * 100 * (37 - 32)
    CHECK(y[96] == -1024.0f); // 0.5 * -128 * (48 - 32)
    CHECK(y[1] == 48.0f);     // 0.5 * -3 * -32
    CHECK(y[177] == 31.0f);   // 0.5 * 2 * (63 - 32)
    CHECK(y[176] == -32.0f);
    CHECK(y[200] == 0.0f);
}

// ---- activation quantizers ----

static void test_q8_ties(void) {
    // amax = 127 makes the multiplier exactly 1 (Q8_0/Q8_1: 127/amax; Q8_K: -127/max with max = -127),
    // so x.5 inputs are exact ties and must round to even.
    float x[256];
    memset(x, 0, sizeof(x));
    const float in[8] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.49f, -127.0f};
    const int want[8] = {0, 2, 2, 0, -2, -2, 3, -127};
    for (int i = 0; i < 8; i++) {
        x[i] = in[i];
    }
    block_q8_0 q0;
    quantize_row_q8_0_ref(x, &q0, 32);
    block_q8_1 q1;
    quantize_row_q8_1_ref(x, &q1, 32);
    block_q8_K qk;
    quantize_row_q8_K_ref(x, &qk, 256);
    int sum = 0;
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(q0.qs[i], want[i]);
        CHECK_EQ_INT(q1.qs[i], want[i]);
        CHECK_EQ_INT(qk.qs[i], want[i]);
        sum += want[i];
    }
    CHECK_EQ_INT(q0.d, 0x3C00);
    CHECK_EQ_INT(q1.d, 0x3C00);
    CHECK_EQ_INT(q1.s, inf_fp32_to_fp16((float)sum));
    CHECK(qk.d == 1.0f);
    CHECK_EQ_INT(qk.bsums[0], sum);
    CHECK_EQ_INT(qk.bsums[1], 0);

    // Q8_K takes its scale from the signed extreme: a positive max maps to -127, and -max can never
    // exceed the 127 clamp.
    memset(x, 0, sizeof(x));
    x[10] = 2.0f;
    x[11] = -1.0f;
    x[12] = 0.999f;
    quantize_row_q8_K_ref(x, &qk, 256);
    CHECK_EQ_INT(qk.qs[10], -127);
    CHECK_EQ_INT(qk.qs[11], 64); // 63.5 -> 64 (even)
    CHECK_EQ_INT(qk.qs[12], -63);
    CHECK(qk.d == 1.0f / (-127.0f / 2.0f));
}

static void test_q8_zero(void) {
    float x[256] = {0};
    block_q8_0 q0;
    memset(&q0, 0x55, sizeof(q0));
    quantize_row_q8_0_ref(x, &q0, 32);
    block_q8_1 q1;
    memset(&q1, 0x55, sizeof(q1));
    quantize_row_q8_1_ref(x, &q1, 32);
    block_q8_K qk;
    memset(&qk, 0x55, sizeof(qk));
    quantize_row_q8_K_ref(x, &qk, 256);
    CHECK_EQ_INT(q0.d, 0);
    CHECK_EQ_INT(q1.d, 0);
    CHECK_EQ_INT(q1.s, 0);
    CHECK(qk.d == 0.0f);
    int nz = 0;
    for (int i = 0; i < 32; i++) {
        nz += q0.qs[i] != 0 || q1.qs[i] != 0;
    }
    for (int i = 0; i < 256; i++) {
        nz += qk.qs[i] != 0;
    }
    for (int i = 0; i < 16; i++) {
        nz += qk.bsums[i] != 0;
    }
    CHECK_EQ_INT(nz, 0);
}

// |x - deq(q(x))| <= d/2, plus, for the fp16-stored scales, the error of storing d in fp16 (|q| * |d -
// fp16(d)|, up to 127 * 2^-11 d); Q8_K keeps d in fp32.
static void test_q8_error_bound(void) {
    enum { N = 1024 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = rng_unit() * (i < 512 ? 1.0f : 1e-3f) + (i % 97 == 0 ? 5.0f : 0.0f);
    }
    block_q8_0 q0[N / 32];
    block_q8_1 q1[N / 32];
    block_q8_K qk[N / 256];
    quantize_row_q8_0_ref(x, q0, N);
    quantize_row_q8_1_ref(x, q1, N);
    quantize_row_q8_K_ref(x, qk, N);

    int bad0 = 0, bad1 = 0, badk = 0, bad_s = 0, bad_bsum = 0;
    fill_nan(y, N);
    dequantize_row_q8_0_ref(q0, y, N);
    for (int i = 0; i < N; i++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(x[i / 32 * 32 + j]));
        }
        double d = amax / 127.0f;
        double d16 = inf_fp16_to_fp32(q0[i / 32].d);
        double bound = d / 2 + 127 * fabs(d - d16) + 1e-7 * d;
        if (!(fabs((double)x[i] - y[i]) <= bound)) {
            bad0++;
        }
    }
    fill_nan(y, N);
    dequantize_row_q8_1_ref(q1, y, N);
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(x[b * 32 + j]));
            sum += q1[b].qs[j];
            bad1 += q1[b].qs[j] != q0[b].qs[j];
        }
        float d = amax / 127.0f;
        double d16 = inf_fp16_to_fp32(q1[b].d);
        bad_s += q1[b].s != inf_fp32_to_fp16(d * (float)sum);
        for (int j = 0; j < 32; j++) {
            double bound = d / 2.0 + 127 * fabs(d - d16) + 1e-7 * d;
            bad1 += !(fabs((double)x[b * 32 + j] - y[b * 32 + j]) <= bound);
        }
    }
    fill_nan(y, N);
    dequantize_row_q8_K_ref(qk, y, N);
    for (int b = 0; b < N / 256; b++) {
        double d = fabs((double)qk[b].d);
        for (int j = 0; j < 256; j++) {
            badk += !(fabs((double)x[b * 256 + j] - y[b * 256 + j]) <= d / 2 * (1 + 1e-6));
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) {
                sum += qk[b].qs[16 * g + l];
            }
            bad_bsum += qk[b].bsums[g] != sum;
        }
    }
    CHECK_EQ_INT(bad0, 0);
    CHECK_EQ_INT(bad1, 0);
    CHECK_EQ_INT(bad_s, 0);
    CHECK_EQ_INT(badk, 0);
    CHECK_EQ_INT(bad_bsum, 0);
}

// ---- dot products on random data ----

// Byte offsets of the fp16 scale fields of each block type: random bytes there could be inf/NaN, so
// they are overwritten with sane scales.
static void fix_scales(inf_type t, uint8_t *blk) {
    size_t off[2] = {SIZE_MAX, SIZE_MAX};
    switch (t) {
    case INF_TYPE_Q4_0: off[0] = offsetof(block_q4_0, d); break;
    case INF_TYPE_Q4_1: off[0] = offsetof(block_q4_1, d); off[1] = offsetof(block_q4_1, m); break;
    case INF_TYPE_Q5_0: off[0] = offsetof(block_q5_0, d); break;
    case INF_TYPE_Q5_1: off[0] = offsetof(block_q5_1, d); off[1] = offsetof(block_q5_1, m); break;
    case INF_TYPE_Q8_0: off[0] = offsetof(block_q8_0, d); break;
    case INF_TYPE_Q2_K: off[0] = offsetof(block_q2_K, d); off[1] = offsetof(block_q2_K, dmin); break;
    case INF_TYPE_Q3_K: off[0] = offsetof(block_q3_K, d); break;
    case INF_TYPE_Q4_K: off[0] = offsetof(block_q4_K, d); off[1] = offsetof(block_q4_K, dmin); break;
    case INF_TYPE_Q5_K: off[0] = offsetof(block_q5_K, d); off[1] = offsetof(block_q5_K, dmin); break;
    case INF_TYPE_Q6_K: off[0] = offsetof(block_q6_K, d); break;
    default: return;
    }
    for (int k = 0; k < 2; k++) {
        if (off[k] != SIZE_MAX) {
            uint16_t h = inf_fp32_to_fp16(rng_unit() * 0.05f);
            memcpy(blk + off[k], &h, 2);
        }
    }
}

static void test_vec_dot_random(void) {
    static const inf_type types[] = {INF_TYPE_F32,  INF_TYPE_F16,  INF_TYPE_BF16, INF_TYPE_Q4_0, INF_TYPE_Q4_1,
                                     INF_TYPE_Q5_0, INF_TYPE_Q5_1, INF_TYPE_Q8_0, INF_TYPE_Q2_K, INF_TYPE_Q3_K,
                                     INF_TYPE_Q4_K, INF_TYPE_Q5_K, INF_TYPE_Q6_K};
    enum { N = 1024 };
    static uint8_t w[N * 4], xq[N * 4];
    static float wd[N], xf[N], xd[N];
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        const inf_type_traits *t = inf_type_get(types[ti]);
        const inf_type_traits *v = inf_type_get(t->vec_dot_type);
        for (int trial = 0; trial < 4; trial++) {
            if (t->block_size == 1) {
                float tmp[N];
                for (int i = 0; i < N; i++) {
                    tmp[i] = rng_unit();
                }
                t->quantize(tmp, w, N);
            } else {
                for (size_t i = 0; i < inf_row_size(types[ti], N); i++) {
                    w[i] = (uint8_t)rng_u32();
                }
                for (int64_t b = 0; b < N / t->block_size; b++) {
                    fix_scales(types[ti], w + b * t->type_size);
                }
            }
            for (int i = 0; i < N; i++) {
                xf[i] = rng_unit() * (trial == 3 ? 100.0f : 1.0f);
            }
            v->quantize(xf, xq, N);
            fill_nan(wd, N);
            fill_nan(xd, N);
            t->dequantize(w, wd, N);
            v->dequantize(xq, xd, N);
            double ref = 0, mag = 0, extra = 0;
            int nonfinite = 0;
            for (int i = 0; i < N; i++) {
                nonfinite += !isfinite(wd[i]) || !isfinite(xd[i]);
                ref += (double)wd[i] * xd[i];
                mag += fabs((double)wd[i] * xd[i]);
            }
            if (t->vec_dot_type == INF_TYPE_Q8_1) {
                // The min term uses s = fp16(d * sum(q)), not fp16(d) * sum(q): allow that rounding.
                for (int b = 0; b < N / 32; b++) {
                    const block_q8_1 *xb = (const block_q8_1 *)xq + b;
                    uint16_t m = types[ti] == INF_TYPE_Q4_1 ? ((const block_q4_1 *)w)[b].m
                                                            : ((const block_q5_1 *)w)[b].m;
                    int sum = 0;
                    for (int j = 0; j < 32; j++) {
                        sum += xb->qs[j];
                    }
                    double exact = (double)inf_fp16_to_fp32(xb->d) * sum;
                    extra += fabs(inf_fp16_to_fp32(m)) * fabs(inf_fp16_to_fp32(xb->s) - exact);
                }
            }
            float got = t->vec_dot(N, w, xq);
            CHECK_EQ_INT(nonfinite, 0);
            CHECK_MSG(fabs(got - ref) <= 1e-5 * mag + 1.0001 * extra + 1e-30, "%s trial %d: %.9g vs %.9g (mag %g)",
                      t->name, trial, (double)got, ref, mag);
        }
    }
}

// ---- weight quantizers ----

static void test_weight_quantizers(void) {
    // Q8_0 files round half away from zero; activations round half to even.
    float x[32] = {0};
    x[0] = 127.0f; // d = 1
    x[1] = 0.5f;
    x[2] = -2.5f;
    x[3] = 1.5f;
    block_q8_0 w, a;
    quantize_row_q8_0_weights_ref(x, &w, 32);
    quantize_row_q8_0_ref(x, &a, 32);
    CHECK(inf_type_weight_quantizer(INF_TYPE_Q8_0) == quantize_row_q8_0_weights_ref);
    CHECK(inf_type_weight_quantizer(INF_TYPE_Q4_K) == quantize_row_q4_K_ref);
    CHECK(inf_type_weight_quantizer(INF_TYPE_Q8_K) == NULL);
    CHECK(inf_type_weight_quantizer(16) == NULL);
    CHECK_EQ_INT(w.qs[1], 1);
    CHECK_EQ_INT(a.qs[1], 0);
    CHECK_EQ_INT(w.qs[2], -3);
    CHECK_EQ_INT(a.qs[2], -2);
    CHECK_EQ_INT(w.qs[3], 2);

    // Q4_0 by hand: extreme -8 gives d = 1; x + 8.5 truncated: 3.5 -> 12 (half up), -3.5 -> 5.
    float y[32] = {0};
    y[0] = -8.0f;
    y[1] = 3.5f;
    y[17] = -3.5f;
    y[2] = 7.9f; // 16.4 -> 16, clamped to 15
    block_q4_0 q;
    quantize_row_q4_0_ref(y, &q, 32);
    CHECK_EQ_INT(q.d, 0x3C00);
    CHECK_EQ_INT(q.qs[0] & 0xF, 0);
    CHECK_EQ_INT(q.qs[1] & 0xF, 12);
    CHECK_EQ_INT(q.qs[1] >> 4, 5);
    CHECK_EQ_INT(q.qs[2] & 0xF, 15);
    CHECK_EQ_INT(q.qs[0] >> 4, 8);

    // All-zero input gives all-zero values for every type, and a round trip on random data stays within
    // each format's resolution (relative RMS error; bounds as in the file test below).
    static const struct {
        inf_type t;
        double bound;
    } types[] = {{INF_TYPE_Q4_0, 0.15}, {INF_TYPE_Q4_1, 0.15}, {INF_TYPE_Q5_0, 0.08}, {INF_TYPE_Q5_1, 0.08},
                 {INF_TYPE_Q8_0, 0.01}, {INF_TYPE_Q2_K, 0.50}, {INF_TYPE_Q3_K, 0.25}, {INF_TYPE_Q4_K, 0.15},
                 {INF_TYPE_Q5_K, 0.08}, {INF_TYPE_Q6_K, 0.04}};
    enum { N = 2048 };
    static float src[N], back[N];
    static uint8_t buf[N * 2];
    for (int i = 0; i < N; i++) {
        src[i] = 0.02f * (rng_unit() + rng_unit() + rng_unit()); // roughly bell-shaped
    }
    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        const inf_type_traits *t = inf_type_get(types[k].t);
        inf_quantize_fn qf = inf_type_weight_quantizer(types[k].t);
        float zero[256] = {0};
        qf(zero, buf, 256);
        fill_nan(back, 256);
        t->dequantize(buf, back, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++) {
            nz += back[i] != 0.0f;
        }
        CHECK_MSG(nz == 0, "%s: zero input", t->name);
        qf(src, buf, N);
        fill_nan(back, N);
        t->dequantize(buf, back, N);
        double e2 = 0, s2 = 0;
        for (int i = 0; i < N; i++) {
            e2 += ((double)back[i] - src[i]) * ((double)back[i] - src[i]);
            s2 += (double)src[i] * src[i];
        }
        CHECK_MSG(sqrt(e2 / s2) < types[k].bound, "%s: relative RMS error %.4f", t->name, sqrt(e2 / s2));
    }
}

// ---- real files ----

// Relative RMS error bounds for N(0, 0.02^2) weights. Uniform rounding with step s has RMS error s/sqrt(12)
// and a block of 32 normals has |max| of about 2.1 sigma (range about 4.1 sigma), so: Q8_0 step 2.1/127
// sigma -> 0.5%; Q5_0 2.1/16 -> 3.8%, Q5_1 4.1/31 -> 3.8%; Q4_0 2.1/8 -> 7.6%, Q4_1 4.1/15 -> 7.9%. The
// K-quants fit per 16/32 elements; measured worst tensors: Q6_K 1.8%, Q5_K 3.6%, Q4_K 7.2%, Q3_K 15%,
// Q2_K 30% (4 levels). F16 keeps 11 significant bits (~2e-4), BF16 8 (~1.7e-3). Bounds are about twice
// these; a layout bug (wrong nibble, bit or scale) gives errors near or above 100%.
static const struct {
    const char *file;
    inf_type type;
    double bound;
} micro_types[] = {
    {"F16", INF_TYPE_F16, 1e-3},     {"BF16", INF_TYPE_BF16, 5e-3},  {"Q8_0", INF_TYPE_Q8_0, 0.01},
    {"Q4_0", INF_TYPE_Q4_0, 0.15},   {"Q4_1", INF_TYPE_Q4_1, 0.15},  {"Q5_0", INF_TYPE_Q5_0, 0.08},
    {"Q5_1", INF_TYPE_Q5_1, 0.08},   {"Q2_K", INF_TYPE_Q2_K, 0.50},  {"Q3_K_M", INF_TYPE_Q3_K, 0.30},
    {"Q4_K_M", INF_TYPE_Q4_K, 0.15}, {"Q5_K_M", INF_TYPE_Q5_K, 0.08}, {"Q6_K", INF_TYPE_Q6_K, 0.04},
};

// Every 2-D tensor of micro-<TYPE>.gguf: dequantized close to micro-F32's, and requantized from F32
// (every row_stride-th row: rows are independent, and the full check takes seconds in a sanitizer build)
// identical block for block.
static void test_micro_file(const gguf_file *f32, const char *dir, size_t k, int row_stride) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/synthetic/micro-%s.gguf", dir, micro_types[k].file);
    gguf_file *f = NULL;
    inf_status st = gguf_open(path, &f);
    CHECK_MSG(st == INF_OK, "%s: %s", path, inf_last_error());
    if (st != INF_OK) {
        return;
    }
    const inf_type_traits *t = inf_type_get(micro_types[k].type);
    inf_quantize_fn qf = inf_type_weight_quantizer(micro_types[k].type);
    int64_t n_2d = 0, blocks = 0, same = 0;
    double worst = 0;
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *q = gguf_tensor_at(f, i);
        if (q->n_dims != 2) {
            continue;
        }
        n_2d++;
        const gguf_tensor *ref = gguf_find_tensor(f32, q->name);
        CHECK_MSG(ref && ref->type == INF_TYPE_F32 && ref->n_elements == q->n_elements && ref->ne[0] == q->ne[0],
                  "%s: %s has no F32 twin", path, q->name);
        CHECK_MSG(q->type == micro_types[k].type, "%s: %s is %s", path, q->name, inf_type_name(q->type));
        if (!ref || ref->n_elements != q->n_elements || ref->ne[0] != q->ne[0] || q->type != micro_types[k].type) {
            continue;
        }
        const float *w = ref->data;
        int64_t ne0 = q->ne[0], rows = (int64_t)q->n_elements / ne0;
        size_t row_bytes = inf_row_size(q->type, ne0);
        CHECK_EQ_INT(q->n_bytes, row_bytes * (size_t)rows);
        float *deq = malloc((size_t)q->n_elements * sizeof(float));
        uint8_t *requant = malloc(row_bytes);
        fill_nan(deq, (int64_t)q->n_elements);
        t->dequantize(q->data, deq, (int64_t)q->n_elements);
        double e2 = 0, s2 = 0;
        for (uint64_t j = 0; j < q->n_elements; j++) {
            e2 += ((double)deq[j] - w[j]) * ((double)deq[j] - w[j]); // NaN (unwritten) fails the bound
            s2 += (double)w[j] * w[j];
        }
        double rel = sqrt(e2 / s2);
        worst = rel > worst || isnan(rel) ? rel : worst;
        CHECK_MSG(rel < micro_types[k].bound, "%s: %s relative RMS error %.5f", path, q->name, rel);
        for (int64_t r = 0; r < rows; r += row_stride) {
            qf(w + r * ne0, requant, ne0);
            const uint8_t *orig = (const uint8_t *)q->data + (size_t)r * row_bytes;
            for (size_t b = 0; b < row_bytes / t->type_size; b++) {
                same += memcmp(requant + b * t->type_size, orig + b * t->type_size, t->type_size) == 0;
                blocks++;
            }
        }
        free(deq);
        free(requant);
    }
    CHECK_EQ_INT(n_2d, 30);
    double frac = blocks ? (double)same / (double)blocks : 0;
    printf("micro-%-7s %-4s: worst relative RMS error %.5f (bound %g); requantized %lld/%lld blocks "
           "bit-identical (%.3f%%)\n",
           micro_types[k].file, t->name, worst, micro_types[k].bound, (long long)same, (long long)blocks,
           100 * frac);
    CHECK_MSG(frac >= 0.99, "%s: only %.3f%% of blocks bit-identical", path, 100 * frac);
    gguf_close(f);
}

static void test_micro_files(void) {
    const char *dir = test_shared_dir();
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/synthetic/micro-F32.gguf", dir);
    gguf_file *f32 = NULL;
    if (gguf_open(path, &f32) != INF_OK) {
        printf("skipping the file checks: %s: %s\n", path, inf_last_error());
        return;
    }
    // INFERNO_QUANT_FULL=1 requantizes every row instead of every 4th.
    const char *full = getenv("INFERNO_QUANT_FULL");
    int stride = full && *full == '1' ? 1 : 4;
    for (size_t k = 0; k < sizeof(micro_types) / sizeof(micro_types[0]); k++) {
        test_micro_file(f32, dir, k, stride);
    }
    gguf_close(f32);
}

int main(void) {
    test_traits();
    test_fp16();
    test_bf16();
    test_block_q4_0();
    test_block_q4_1();
    test_block_q5_0();
    test_block_q5_1();
    test_block_q8_0();
    test_block_q2_K();
    test_block_q3_K();
    test_block_q4_K();
    test_block_q5_K();
    test_block_q6_K();
    test_q8_ties();
    test_q8_zero();
    test_q8_error_bound();
    test_vec_dot_random();
    test_weight_quantizers();
    test_micro_files();
    return test_summary();
}
