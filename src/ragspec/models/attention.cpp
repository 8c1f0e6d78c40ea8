// Attention of the few rows a decode or verification forward brings, over the K/V slab of the fast
// backend (ragspec/models/attention.py): every cached row (the prefix) plus the new rows under their
// tree mask, reading each key and value once.
//
// Decode and verification attend a handful of rows (the group's query heads x the new tokens) to thousands
// of cached rows, so they are bound by reading the cache. Queries that share a KV head are processed
// together, so each key and value is read once for all of them; the sequence is cut into chunks that run
// in parallel and are merged by their log-sum-exps (flash-decoding). Scores are kept in base 2 (the
// queries carry scale * log2(e)), so a softmax weight is one exp2.
//
// Chunks and blocks start at fixed key positions and a masked key adds exactly zero, so a row's result
// depends only on the keys it sees: a token verified in a tree gets bit for bit what it gets decoded
// alone (a drafter's lookahead and the target's verification then agree exactly with plain decoding).
//
// Written with GCC's vector extensions: the same source compiles to AVX-512, AVX2 or SSE code with
// -march=native. Scores lie in a block as [key][row], vectors running over query rows, so one key's
// coordinate broadcasts against a vector of rows and no horizontal sum is needed.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
constexpr int W = 16;         // floats per vector
constexpr int BK = 32;        // keys per block: the block's scores, keys and values stay in L1
constexpr int MAX_ROWS = 256; // query rows per KV head (attention.py falls back above)
constexpr int64_t CHUNK = 256;  // keys per parallel task, from key 0 on

static inline vf splat(float x) { return vf{} + x; }
static inline vf loadv(const float* p) { vf v; std::memcpy(&v, p, sizeof v); return v; }
static inline void storev(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }

// 2^x for x <= 0, relative error about 1e-7: x = n + f with |f| <= 1/2, 2^f by its Taylor series in
// f ln 2 to degree 7, 2^n by the exponent bits. Below -126 the weight is under 1e-38 of the block's
// largest (which is 1), so clamping there changes no sum.
static inline vf exp2v(vf x) {
  x = vmax(x, splat(-126.f));
  const vf magic = splat(12582912.f);  // 1.5 * 2^23: adding then subtracting it rounds to an integer
  const vf n = (x + magic) - magic;
  const vf f = x - n;
  vf p = splat(1.5252733804059841e-05f);
  p = p * f + 1.5403530393381609e-04f;
  p = p * f + 1.3333558146428443e-03f;
  p = p * f + 9.6181291076284772e-03f;
  p = p * f + 5.5504108664821580e-02f;
  p = p * f + 2.4022650695910071e-01f;
  p = p * f + 6.9314718055994531e-01f;
  p = p * f + 1.0f;
  const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
  return p * (vf)bits;
}

// exp2(x - m) where a masked score (-inf) gives exactly 0, also when m is -inf (nothing seen yet).
static inline vf weight(vf x, vf m) {
  const vf e = exp2v(x - m);
  return x == splat(-INFINITY) ? vf{} : e;
}

// The new rows n..n+q-1 seen by each query row: row r is token r % q, which sees new row n + j iff
// mask[r % q][j] (bytes, [q, q]).
struct Local {
  int64_t n, q;
  const uint8_t* mask;
};

// One task: rows [RP] of queries (qt: [D][RP], scaled, padded with zeros) against keys k0..k1.
// Leaves the unnormalized output acc [R][D], the running maximum m and the sum l (base 2) per row.
template <int D>
static void attend(const float* qt, int R, int RP, const float* K, const float* V, int64_t k0, int64_t k1,
                   const Local& local, float* acc, float* m, float* l) {
  alignas(64) float S[BK * MAX_ROWS];  // [key][row] scores, then weights
  alignas(64) float corr[MAX_ROWS];
  const int RV = RP / W;
  for (int r = 0; r < RP; ++r) { m[r] = -INFINITY; l[r] = 0.f; }
  std::fill(acc, acc + (int64_t)R * D, 0.f);
  for (int64_t kb = k0; kb < k1; kb += BK) {
    const int nb = (int)std::min<int64_t>(BK, k1 - kb);
    const float* Kb = K + kb * D;
    const float* Vb = V + kb * D;
    // Ask for every line of the block at once: with many loads in flight a core reads faster than the
    // hardware prefetcher alone lets it (SmolLM2 at 8K: 19 against 21-22 ms; prefetching 1-8 blocks
    // ahead instead was slower).
    for (int b = 0; b < nb * D * 4; b += 64) {
      __builtin_prefetch((const char*)Kb + b);
      __builtin_prefetch((const char*)Vb + b);
    }
    for (int rv = 0; rv < RV; ++rv) {  // scores: eight keys at a time, eight independent sums
      const float* q = qt + rv * W;
      int j = 0;
      for (; j + 8 <= nb; j += 8) {
        vf s[8] = {};
        const float* k = Kb + (int64_t)j * D;
        for (int d = 0; d < D; ++d) {
          const vf qd = loadv(q + d * RP);
#pragma GCC unroll 8
          for (int t = 0; t < 8; ++t) s[t] += qd * k[t * D + d];
        }
        for (int t = 0; t < 8; ++t) storev(S + (j + t) * RP + rv * W, s[t]);
      }
      for (; j < nb; ++j) {
        vf s = {};
        const float* k = Kb + (int64_t)j * D;
        for (int d = 0; d < D; ++d) s += loadv(q + d * RP) * k[d];
        storev(S + j * RP + rv * W, s);
      }
    }
    for (int64_t j = std::max<int64_t>(0, local.n - kb); j < nb; ++j) {  // new rows: the tree mask
      const uint8_t* seen = local.mask + (kb + j - local.n);
      for (int r = 0; r < R; ++r)
        if (!seen[(r % local.q) * local.q]) S[j * RP + r] = -INFINITY;
    }
    for (int rv = 0; rv < RV; ++rv) {  // online softmax, sixteen rows per vector
      vf mx = loadv(m + rv * W);
      const vf old = mx;
      for (int j = 0; j < nb; ++j) mx = vmax(mx, loadv(S + j * RP + rv * W));
      vf sum = {};
      for (int j = 0; j < nb; ++j) {
        const vf p = weight(loadv(S + j * RP + rv * W), mx);
        storev(S + j * RP + rv * W, p);
        sum += p;
      }
      const vf c = weight(old, mx);  // 1 exactly where the maximum did not move
      storev(corr + rv * W, c);
      storev(l + rv * W, loadv(l + rv * W) * c + sum);
      storev(m + rv * W, mx);
    }
    constexpr int DV = D / W;
    for (int r = 0; r < R; r += 2) {  // acc = acc * corr + P V, two rows at a time (shared value loads)
      const bool two = r + 1 < R;
      float* a0p = acc + (int64_t)r * D;
      float* a1p = two ? a0p + D : a0p;
      vf a0[DV], a1[DV];
      for (int u = 0; u < DV; ++u) {
        a0[u] = loadv(a0p + u * W) * corr[r];
        a1[u] = two ? loadv(a1p + u * W) * corr[r + 1] : vf{};
      }
      for (int j = 0; j < nb; ++j) {
        const float p0 = S[j * RP + r], p1 = two ? S[j * RP + r + 1] : 0.f;
        const float* v = Vb + (int64_t)j * D;
#pragma GCC unroll 8
        for (int u = 0; u < DV; ++u) {
          const vf vv = loadv(v + u * W);
          a0[u] += vv * p0;
          a1[u] += vv * p1;
        }
      }
      for (int u = 0; u < DV; ++u) {
        storev(a0p + u * W, a0[u]);
        if (two) storev(a1p + u * W, a1[u]);
      }
    }
  }
}

// q [Hkv, R, D] (any strides), keys / values [Hkv, >= n + q, D] (rows contiguous): attention of every row
// of q over rows 0..n-1 of its KV head and over rows n..n+q-1 as `local` allows.
// Returns out [Hkv, R, D] and the natural log-sum-exp [Hkv, R].
template <int D>
static std::vector<torch::Tensor> run(torch::Tensor q, torch::Tensor keys, torch::Tensor values, const Local& local,
                                      double scale) {
  const int64_t H = q.size(0), R = q.size(1), total = local.n + local.q;
  const int RP = (int)((R + W - 1) / W * W);
  const int64_t chunks = (total + CHUNK - 1) / CHUNK;
  const int64_t tasks = H * chunks;
  auto qt = torch::zeros({H, D, RP}, q.options());  // queries transposed, in base 2
  auto qa = q.accessor<float, 3>();
  float* qtp = qt.data_ptr<float>();
  const float s2 = (float)(scale * M_LOG2E);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t r = 0; r < R; ++r)
      for (int d = 0; d < D; ++d) qtp[(h * D + d) * RP + r] = qa[h][r][d] * s2;
  auto part = torch::empty({tasks, R, D}, q.options());
  auto stats = torch::empty({tasks, 2, RP}, q.options());  // m, l per task and row
  const float* kp = keys.data_ptr<float>();
  const float* vp = values.data_ptr<float>();
  const int64_t ks = keys.stride(0), vs = values.stride(0);
  at::parallel_for(0, tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t h = t / chunks, c = t % chunks;
      const int64_t k0 = c * CHUNK, k1 = std::min(total, k0 + CHUNK);
      float* st = stats.data_ptr<float>() + t * 2 * RP;
      attend<D>(qtp + h * D * RP, (int)R, RP, kp + h * ks, vp + h * vs, k0, k1, local,
                part.data_ptr<float>() + t * R * D, st, st + RP);
    }
  });
  auto out = torch::empty({H, R, D}, q.options());
  auto lse = torch::empty({H, R}, q.options());
  const float* pp = part.data_ptr<float>();
  const float* sp = stats.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* lp = lse.data_ptr<float>();
  for (int64_t h = 0; h < H; ++h)
    for (int64_t r = 0; r < R; ++r) {  // merge the chunks by their maxima and sums, in key order
      float M = -INFINITY;
      for (int64_t c = 0; c < chunks; ++c) M = std::max(M, sp[(h * chunks + c) * 2 * RP + r]);
      float L = 0.f;
      float* o = op + (h * R + r) * D;
      std::fill(o, o + D, 0.f);
      for (int64_t c = 0; c < chunks; ++c) {
        const float* st = sp + (h * chunks + c) * 2 * RP;
        if (st[RP + r] == 0.f) continue;  // every key of the chunk masked for this row
        const float w = std::exp2(st[r] - M);
        L += st[RP + r] * w;
        const float* a = pp + ((h * chunks + c) * R + r) * D;
        for (int d = 0; d < D; ++d) o[d] += a[d] * w;
      }
      for (int d = 0; d < D; ++d) o[d] /= L;
      lp[h * R + r] = (float)((M + std::log2(L)) * M_LN2);
    }
  return {out, lse};
}

std::vector<torch::Tensor> attention(torch::Tensor q, torch::Tensor keys, torch::Tensor values, int64_t n,
                                     torch::Tensor mask, double scale) {
  TORCH_CHECK(q.dtype() == torch::kFloat32 && keys.dtype() == torch::kFloat32 && values.dtype() == torch::kFloat32,
              "float32 only");
  TORCH_CHECK(q.dim() == 3 && keys.dim() == 3 && values.dim() == 3, "q, keys, values must be [heads, rows, dim]");
  TORCH_CHECK(keys.size(0) == q.size(0) && values.size(0) == q.size(0), "one KV head per query group");
  TORCH_CHECK(mask.dim() == 2 && mask.size(0) == mask.size(1) && mask.scalar_type() == torch::kBool &&
                  mask.is_contiguous(), "mask must be a contiguous bool [q, q]");
  const int64_t nq = mask.size(0);
  TORCH_CHECK(n >= 0 && nq >= 1 && q.size(1) % nq == 0, "q's rows must be whole groups of the mask's tokens");
  TORCH_CHECK(keys.size(1) >= n + nq && values.size(1) >= n + nq, "n + q rows must lie within the cache");
  TORCH_CHECK(q.size(1) <= MAX_ROWS, "too many query rows");
  const int64_t D = q.size(2);
  TORCH_CHECK(keys.size(2) == D && values.size(2) == D && keys.stride(2) == 1 && values.stride(2) == 1 &&
                  keys.stride(1) == D && values.stride(1) == D, "keys and values must have contiguous rows");
  const Local local{n, nq, (const uint8_t*)mask.data_ptr<bool>()};
  switch (D) {
    case 16: return run<16>(q, keys, values, local, scale);
    case 32: return run<32>(q, keys, values, local, scale);
    case 64: return run<64>(q, keys, values, local, scale);
    case 128: return run<128>(q, keys, values, local, scale);
  }
  TORCH_CHECK(false, "head dimension must be 16, 32, 64 or 128");
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attention", &attention, "attention of a few rows over a K/V prefix and the new rows under a mask");
}
