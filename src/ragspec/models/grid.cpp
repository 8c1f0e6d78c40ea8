// y = x W^T for a float32 weight stored as 4- or 8-bit codes on per-block grids (ragspec/models/grid.py).
//
// 4-bit: W[n, 32 b + j] = code * scale[n, b] + offset[n, b], code * scale exact in float32 (grid.py
// checks it), so a fused multiply-add and a multiply then add give the same float32 weight: the very
// value the model holds. 8-bit: W[n, 16 h + j] = code * scale[n, h] with a signed code and a scale per
// 16 inputs, one float32 multiply (one rounding, as the GGUF dequantization that made W). The sums run in
// float32 in another order than MKL's, as every fast-backend kernel does.
//
// Layout, one stream per tile of 4 rows of W (rows padded to a multiple of 4): for tile t and block b of
// 32 inputs, Unit<BITS>::BYTES at (t * B + b) * BYTES: the 4 rows' codes, then 4 floats, then 4 more.
// 4-bit: 16 code bytes a row, byte j holding element j in its low nibble and element 16 + j in its high
// one; then the scales, then the offsets. 8-bit: 32 code bytes a row (int8), byte j holding element j;
// then the scales of elements 0-15, then those of elements 16-31.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstdint>
#include <cmath>
#include <cstring>

constexpr int ROWS = 4;        // rows of W per tile
constexpr int64_t AHEAD = 16;  // units prefetched ahead: 3.7 against 4.9 ms for SmolLM2's layers at 1 row

template <int BITS>
struct Unit {
  static constexpr int64_t CODES = 32 * BITS / 8;               // code bytes per row and block
  static constexpr int64_t BYTES = ROWS * CODES + 2 * ROWS * 4;  // bytes per tile and block
};

// `weights` (4-bit codes) and `weights8` rebuild a block row's 32 weights as two vectors of 16 (elements
// 0-15 and 16-31).
#if defined(__AVX512F__)
#include <immintrin.h>
struct vf { __m512 v; };
static inline vf zero() { return {_mm512_setzero_ps()}; }
static inline vf load(const float* p) { return {_mm512_loadu_ps(p)}; }
static inline vf fma(vf a, vf b, vf c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
static inline float total(vf a) { return _mm512_reduce_add_ps(a.v); }
static inline void weights(const uint8_t* codes, float scale, float offset, vf& low, vf& high) {
  // The block's 16 possible weights as a table (code * scale exact, so one rounding each), then a
  // lookup per lane: vpermps reads only an index's low 4 bits, so the low nibbles need no mask.
  const __m512 ramp = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 table = _mm512_fmadd_ps(ramp, _mm512_set1_ps(scale), _mm512_set1_ps(offset));
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)codes));
  low.v = _mm512_permutexvar_ps(v, table);
  high.v = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
}
static inline void weights8(const uint8_t* codes, float scale_low, float scale_high, vf& low, vf& high) {
  const __m512i v0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)codes));
  const __m512i v1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(codes + 16)));
  low.v = _mm512_mul_ps(_mm512_cvtepi32_ps(v0), _mm512_set1_ps(scale_low));
  high.v = _mm512_mul_ps(_mm512_cvtepi32_ps(v1), _mm512_set1_ps(scale_high));
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
struct vf { __m256 a, b; };
static inline vf zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
static inline vf load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
static inline vf fma(vf x, vf y, vf c) { return {_mm256_fmadd_ps(x.a, y.a, c.a), _mm256_fmadd_ps(x.b, y.b, c.b)}; }
static inline float total(vf x) {
  const __m256 s = _mm256_add_ps(x.a, x.b);
  __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  t = _mm_hadd_ps(t, t);
  return _mm_cvtss_f32(_mm_hadd_ps(t, t));
}
static inline __m256 level(__m256i codes, __m256 s, __m256 o) { return _mm256_fmadd_ps(_mm256_cvtepi32_ps(codes), s, o); }
static inline void weights(const uint8_t* codes, float scale, float offset, vf& low, vf& high) {
  const __m256 s = _mm256_set1_ps(scale), o = _mm256_set1_ps(offset);
  const __m256i mask = _mm256_set1_epi32(15);
  const __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)codes));
  const __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(codes + 8)));
  low = {level(_mm256_and_si256(v0, mask), s, o), level(_mm256_and_si256(v1, mask), s, o)};
  high = {level(_mm256_srli_epi32(v0, 4), s, o), level(_mm256_srli_epi32(v1, 4), s, o)};
}
static inline __m256 signed8(const uint8_t* codes, __m256 s) {
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)codes))), s);
}
static inline void weights8(const uint8_t* codes, float scale_low, float scale_high, vf& low, vf& high) {
  const __m256 sl = _mm256_set1_ps(scale_low), sh = _mm256_set1_ps(scale_high);
  low = {signed8(codes, sl), signed8(codes + 8, sl)};
  high = {signed8(codes + 16, sh), signed8(codes + 24, sh)};
}
#else
struct vf { float v[16]; };
static inline vf zero() { return vf{}; }
static inline vf load(const float* p) { vf r; std::memcpy(r.v, p, 64); return r; }
static inline vf fma(vf a, vf b, vf c) { for (int j = 0; j < 16; j++) c.v[j] = std::fma(a.v[j], b.v[j], c.v[j]); return c; }
static inline float total(vf a) { float s = 0.f; for (int j = 0; j < 16; j++) s += a.v[j]; return s; }
static inline void weights(const uint8_t* codes, float scale, float offset, vf& low, vf& high) {
  for (int j = 0; j < 16; j++) {
    low.v[j] = std::fma((float)(codes[j] & 15), scale, offset);
    high.v[j] = std::fma((float)(codes[j] >> 4), scale, offset);
  }
}
static inline void weights8(const uint8_t* codes, float scale_low, float scale_high, vf& low, vf& high) {
  for (int j = 0; j < 16; j++) {
    low.v[j] = (float)(int8_t)codes[j] * scale_low;
    high.v[j] = (float)(int8_t)codes[16 + j] * scale_high;
  }
}
#endif

template <int BITS>  // a, b: scale and offset (4-bit), the two halves' scales (8-bit)
static inline void rebuild(const uint8_t* codes, float a, float b, vf& low, vf& high) {
  if constexpr (BITS == 4) weights(codes, a, b, low, high);
  else weights8(codes, a, b, low, high);
}

// One tile (4 rows of W) against R rows of x, 4 * R accumulators in registers: a block's codes are
// rebuilt into weights once and serve all R rows of x.
template <int BITS, int R>
static inline void tile(const float* x, int64_t K, const uint8_t* unit, float* y, int64_t N, int64_t n) {
  constexpr int64_t UNIT = Unit<BITS>::BYTES, CODES = Unit<BITS>::CODES;
  const int64_t B = K / 32;
  vf acc[ROWS][R];
  for (int i = 0; i < ROWS; i++)
    for (int r = 0; r < R; r++) acc[i][r] = zero();
  for (int64_t b = 0; b < B; b++, unit += UNIT) {
    for (int64_t line = 0; line < UNIT; line += 64)
      __builtin_prefetch(unit + AHEAD * UNIT + line);  // a hint only: past the end it reads nothing
    vf xl[R], xh[R];
    for (int r = 0; r < R; r++) {
      xl[r] = load(x + r * K + 32 * b);
      xh[r] = load(x + r * K + 32 * b + 16);
    }
    float scale[ROWS], offset[ROWS];
    std::memcpy(scale, unit + ROWS * CODES, sizeof scale);
    std::memcpy(offset, unit + ROWS * CODES + sizeof scale, sizeof offset);
    for (int i = 0; i < ROWS; i++) {
      vf low, high;
      rebuild<BITS>(unit + CODES * i, scale[i], offset[i], low, high);
      for (int r = 0; r < R; r++) acc[i][r] = fma(xh[r], high, fma(xl[r], low, acc[i][r]));
    }
  }
  for (int i = 0; i < ROWS && n + i < N; i++)
    for (int r = 0; r < R; r++) y[r * N + n + i] = total(acc[i][r]);
}

template <int BITS>
static torch::Tensor matmul_bits(torch::Tensor x, torch::Tensor packed, int64_t N) {
  constexpr int64_t UNIT = Unit<BITS>::BYTES;
  const int64_t M = x.size(0), K = x.size(1), B = K / 32, T = (N + ROWS - 1) / ROWS;
  TORCH_CHECK(K % 32 == 0 && packed.numel() == T * B * UNIT, "x does not match the packed weight");
  auto y = torch::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const uint8_t* wp = packed.data_ptr<uint8_t>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, T, 8, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++)
      for (int64_t m = 0; m < M; m += 4) {  // x rows in groups of up to 4; the tile's bytes stay in cache
        const float* xm = xp + m * K;
        float* ym = yp + m * N;
        const uint8_t* unit = wp + t * B * UNIT;
        switch (M - m) {
          case 1: tile<BITS, 1>(xm, K, unit, ym, N, ROWS * t); break;
          case 2: tile<BITS, 2>(xm, K, unit, ym, N, ROWS * t); break;
          case 3: tile<BITS, 3>(xm, K, unit, ym, N, ROWS * t); break;
          default: tile<BITS, 4>(xm, K, unit, ym, N, ROWS * t);
        }
      }
  });
  return y;
}

template <int BITS>
static torch::Tensor dequantize_bits(torch::Tensor packed, int64_t N, int64_t K) {
  constexpr int64_t UNIT = Unit<BITS>::BYTES, CODES = Unit<BITS>::CODES;
  const int64_t B = K / 32, T = (N + ROWS - 1) / ROWS;
  TORCH_CHECK(K % 32 == 0 && packed.numel() == T * B * UNIT, "shape does not match the packed weight");
  auto w = torch::empty({N, K}, torch::kFloat);
  const uint8_t* wp = packed.data_ptr<uint8_t>();
  float* out = w.data_ptr<float>();
  for (int64_t t = 0; t < T; t++)
    for (int64_t b = 0; b < B; b++) {
      const uint8_t* unit = wp + (t * B + b) * UNIT;
      float scale[ROWS], offset[ROWS];
      std::memcpy(scale, unit + ROWS * CODES, sizeof scale);
      std::memcpy(offset, unit + ROWS * CODES + sizeof scale, sizeof offset);
      for (int i = 0; i < ROWS && ROWS * t + i < N; i++) {
        vf low, high;
        rebuild<BITS>(unit + CODES * i, scale[i], offset[i], low, high);
        float* row = out + (ROWS * t + i) * K + 32 * b;
        std::memcpy(row, &low, 64);  // every layout of vf is 16 contiguous floats
        std::memcpy(row + 16, &high, 64);
      }
    }
  return w;
}

torch::Tensor matmul(torch::Tensor x, torch::Tensor packed, int64_t N, int64_t bits) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous(), "x: contiguous float32 [M, K]");
  TORCH_CHECK(bits == 4 || bits == 8, "codes of 4 or 8 bits");
  return bits == 4 ? matmul_bits<4>(x, packed, N) : matmul_bits<8>(x, packed, N);
}

torch::Tensor dequantize(torch::Tensor packed, int64_t N, int64_t K, int64_t bits) {
  TORCH_CHECK(bits == 4 || bits == 8, "codes of 4 or 8 bits");
  return bits == 4 ? dequantize_bits<4>(packed, N, K) : dequantize_bits<8>(packed, N, K);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("matmul", &matmul, "x W^T with W on 4- or 8-bit block grids");
  m.def("dequantize", &dequantize, "W from its packed codes, scales and offsets (the kernel's own arithmetic)");
}
