// cpu.c: CPU feature detection (CPUID, with XGETBV to confirm the OS saves the wide registers), the
// scalar kernel table built from the src/quant reference kernels plus the scalar attention and SwiGLU
// references, and the dispatch that picks the best variant this CPU supports once per process (INFERNO_ISA
// caps it).
//
// Deliberately left out: the kernels themselves (kernels_<isa>.c), threading (callers split rows), and
// any ISA below AVX2 other than the scalar reference: x86-64 machines without AVX2 run the scalar table.
#include "backend/cpu/cpu_internal.h"
#include "core/core.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define INF_CPU_X86 1
#else
#define INF_CPU_X86 0
#endif

// ---- features ----

static inf_cpu_features cpu_features;
static pthread_once_t cpu_features_once = PTHREAD_ONCE_INIT;

#if INF_CPU_X86
static uint64_t cpu_xgetbv0(void) {
    uint32_t lo, hi;
    // Inline asm rather than _xgetbv(), which would need -mxsave on this file; only reached when CPUID
    // reports OSXSAVE, so the instruction exists.
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void cpu_features_detect(void) {
    inf_cpu_features f = {0};
#if INF_CPU_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) {
        cpu_features = f;
        return;
    }
    bool osxsave = (c >> 27) & 1;
    bool fma = (c >> 12) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    uint64_t xcr0 = osxsave ? cpu_xgetbv0() : 0;
    // XCR0: bits 1-2 are the SSE and AVX state (YMM), bits 5-7 the opmask and upper/extra ZMM state.
    bool os_ymm = (xcr0 & 0x6) == 0x6;
    bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    unsigned b7 = 0, c7 = 0, a71 = 0;
    if (max_leaf >= 7) {
        unsigned d7;
        __cpuid_count(7, 0, a, b7, c7, d7);
        unsigned b71, c71, d71;
        if (a >= 1) {
            __cpuid_count(7, 1, a71, b71, c71, d71);
        }
    }
    if (os_ymm && avx) {
        f.avx2 = (b7 >> 5) & 1;
        f.fma = fma;
        f.f16c = f16c;
        f.avx_vnni = (a71 >> 4) & 1;
    }
    if (os_zmm) {
        f.avx512f = (b7 >> 16) & 1;
        f.avx512dq = (b7 >> 17) & 1;
        f.avx512bw = (b7 >> 30) & 1;
        f.avx512vl = (b7 >> 31) & 1;
        f.avx512vnni = (c7 >> 11) & 1;
        f.avx512vbmi = (c7 >> 1) & 1;
        f.avx512bf16 = (a71 >> 5) & 1;
    }
#endif
    cpu_features = f;
}

const inf_cpu_features *inf_cpu_features_get(void) {
    pthread_once(&cpu_features_once, cpu_features_detect);
    return &cpu_features;
}

// ---- the scalar table: the src/quant reference kernels, and gemm tiles looping over them ----

INF_GEMM_FROM_VEC_DOT(gemm_f32_ref, vec_dot_f32_ref)
INF_GEMM_FROM_VEC_DOT(gemm_f16_ref, vec_dot_f16_ref)
INF_GEMM_FROM_VEC_DOT(gemm_bf16_ref, vec_dot_bf16_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q4_0_ref, vec_dot_q4_0_q8_0_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q4_1_ref, vec_dot_q4_1_q8_1_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q5_0_ref, vec_dot_q5_0_q8_0_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q5_1_ref, vec_dot_q5_1_q8_1_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q8_0_ref, vec_dot_q8_0_q8_0_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q2_K_ref, vec_dot_q2_K_q8_K_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q3_K_ref, vec_dot_q3_K_q8_K_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q4_K_ref, vec_dot_q4_K_q8_K_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q5_K_ref, vec_dot_q5_K_q8_K_ref)
INF_GEMM_FROM_VEC_DOT(gemm_q6_K_ref, vec_dot_q6_K_q8_K_ref)

void inf_swiglu_f32_ref(float *h, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) h[i] = h[i] / (1.0f + expf(-h[i])) * u[i];
}

void inf_attn_f32_ref(int hd, int G, const float *q, const float *k, const float *v, size_t kv_stride,
                      const int32_t *cells, int n, float scale, float *out) {
    for (int g = 0; g < G; g++) {
        const float *qg = q + (size_t)g * (size_t)hd;
        float *o = out + (size_t)g * (size_t)hd;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            const float *kj = k + (size_t)cells[j] * kv_stride;
            float dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += qg[i] * kj[i];
            mx = fmaxf(mx, dot * scale);
        }
        for (int i = 0; i < hd; i++) o[i] = 0.0f;
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            const float *kj = k + (size_t)cells[j] * kv_stride, *vj = v + (size_t)cells[j] * kv_stride;
            float dot = 0.0f;
            for (int i = 0; i < hd; i++) dot += qg[i] * kj[i];
            float e = expf(dot * scale - mx);
            sum += (double)e;
            for (int i = 0; i < hd; i++) o[i] += e * vj[i];
        }
        float inv = (float)(1.0 / sum);
        for (int i = 0; i < hd; i++) o[i] *= inv;
    }
}

void inf_attn_tile_f32_ref(int hd, int G, int Tq, const float *q, size_t q_stride, const float *k, const float *v,
                           size_t kv_stride, const int32_t *cells, int n0, float scale, float *out) {
    for (int j = 0; j < Tq; j++)
        inf_attn_f32_ref(hd, G, q + (size_t)j * q_stride, k, v, kv_stride, cells, n0 + j, scale,
                         out + (size_t)j * q_stride);
}

static void cpu_kernels_fill_scalar(inf_cpu_kernels *k) {
    memset(k, 0, sizeof(*k));
    k->isa = "scalar";
    for (uint32_t t = 0; t < INF_TYPE_COUNT; t++) {
        const inf_type_traits *tr = inf_type_get(t);
        if (tr != NULL) {
            k->vec_dot[t] = tr->vec_dot;   // NULL for the activation-only Q8_1 and Q8_K
            k->quantize[t] = tr->quantize; // for Q8_0 the activation quantizer (round half to even)
        }
    }
    k->gemm[INF_TYPE_F32] = gemm_f32_ref;
    k->gemm[INF_TYPE_F16] = gemm_f16_ref;
    k->gemm[INF_TYPE_BF16] = gemm_bf16_ref;
    k->gemm[INF_TYPE_Q4_0] = gemm_q4_0_ref;
    k->gemm[INF_TYPE_Q4_1] = gemm_q4_1_ref;
    k->gemm[INF_TYPE_Q5_0] = gemm_q5_0_ref;
    k->gemm[INF_TYPE_Q5_1] = gemm_q5_1_ref;
    k->gemm[INF_TYPE_Q8_0] = gemm_q8_0_ref;
    k->gemm[INF_TYPE_Q2_K] = gemm_q2_K_ref;
    k->gemm[INF_TYPE_Q3_K] = gemm_q3_K_ref;
    k->gemm[INF_TYPE_Q4_K] = gemm_q4_K_ref;
    k->gemm[INF_TYPE_Q5_K] = gemm_q5_K_ref;
    k->gemm[INF_TYPE_Q6_K] = gemm_q6_K_ref;
    k->attn = inf_attn_f32_ref;
    k->attn_tile = inf_attn_tile_f32_ref;
    k->swiglu = inf_swiglu_f32_ref;
}

// ---- dispatch ----

enum { CPU_SCALAR, CPU_AVX2, CPU_AVX512, CPU_VARIANTS };
static const char *const cpu_variant_names[CPU_VARIANTS] = {"scalar", "avx2", "avx512"};

static inf_cpu_kernels cpu_tables[CPU_VARIANTS];
static bool cpu_table_ok[CPU_VARIANTS];
static int cpu_best; // index of the table inf_cpu_kernels_get() returns
static pthread_once_t cpu_tables_once = PTHREAD_ONCE_INIT;

static bool cpu_has_avx2(const inf_cpu_features *f) { return f->avx2 && f->fma && f->f16c; }

// The AVX-512 file is compiled with F, BW, VL, DQ and VNNI (and BF16, used only when present): all five
// must be there. CPUs with AVX-512 but no VNNI (Skylake-SP) get the AVX2 table.
static bool cpu_has_avx512(const inf_cpu_features *f) {
    return cpu_has_avx2(f) && f->avx512f && f->avx512bw && f->avx512vl && f->avx512dq && f->avx512vnni;
}

static void cpu_tables_init(void) {
    const inf_cpu_features *f = inf_cpu_features_get();
    cpu_kernels_fill_scalar(&cpu_tables[CPU_SCALAR]);
    cpu_table_ok[CPU_SCALAR] = true;
#if INF_CPU_X86
    if (cpu_has_avx2(f)) {
        cpu_tables[CPU_AVX2] = cpu_tables[CPU_SCALAR];
        cpu_tables[CPU_AVX2].isa = "avx2";
        inf_cpu_kernels_fill_avx2(&cpu_tables[CPU_AVX2], f);
        cpu_table_ok[CPU_AVX2] = true;
    }
    if (cpu_has_avx512(f)) {
        // Entries the AVX-512 file has not written yet fall back to AVX2, not to scalar.
        cpu_tables[CPU_AVX512] = cpu_tables[CPU_AVX2];
        cpu_tables[CPU_AVX512].isa = "avx512";
        inf_cpu_kernels_fill_avx512(&cpu_tables[CPU_AVX512], f);
        cpu_table_ok[CPU_AVX512] = true;
    }
#else
    (void)f;
#endif
    int cap = CPU_VARIANTS - 1;
    const char *env = getenv("INFERNO_ISA");
    if (env != NULL && *env != '\0') {
        int i = 0;
        while (i < CPU_VARIANTS && strcmp(env, cpu_variant_names[i]) != 0) {
            i++;
        }
        if (i < CPU_VARIANTS) {
            cap = i;
        } else {
            inf_log(INF_LOG_WARN, "INFERNO_ISA=%s: unknown (scalar, avx2, avx512); ignored", env);
        }
    }
    cpu_best = CPU_SCALAR;
    for (int i = 0; i <= cap; i++) {
        if (cpu_table_ok[i]) {
            cpu_best = i;
        }
    }
    inf_log(INF_LOG_DEBUG, "cpu kernels: %s", cpu_tables[cpu_best].isa);
}

const inf_cpu_kernels *inf_cpu_kernels_get(void) {
    pthread_once(&cpu_tables_once, cpu_tables_init);
    return &cpu_tables[cpu_best];
}

const inf_cpu_kernels *inf_cpu_kernels_variant(const char *isa) {
    pthread_once(&cpu_tables_once, cpu_tables_init);
    for (int i = 0; i < CPU_VARIANTS && isa != NULL; i++) {
        if (strcmp(isa, cpu_variant_names[i]) == 0) {
            return cpu_table_ok[i] ? &cpu_tables[i] : NULL;
        }
    }
    return NULL;
}
