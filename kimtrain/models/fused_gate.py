"""CGCNN's gated convolution on the CPU as fused loops (a C++ extension built on first use),
differentiable twice, so training on forces (a double backward) runs fused too.

For each stored pair e = (i, j) and each direction (r, s) in ((i, j), (j, i)),

    z = A[r] + B[s] + (1 - t_e) T[k_e] + t_e T[k_e + 1]                 (2F: gate half, core half)
    Y[r] += c_e * sigmoid(z_gate) * softplus(z_core)                     (F)

with A, B (N, 2F) the receiver and sender maps of the atom features, T (G, 2F) the edge term
tabulated on a distance grid (row k_e, fraction t_e), and c_e the cutoff function. The PyTorch
path materialises z, the gates and the messages (2 x pairs x 2F each, kept for the backward);
these loops recompute them from A, B and T instead, so memory stays at atoms x features.

One loop per order: each thread owns a range of feature columns and passes over the pairs once,
so no two threads write one element of the per-atom and per-grid-row sums; per-pair sums (the
gradients of t and c) go to the thread's own row of a small buffer, summed in a fixed order.
Results are deterministic for a given number of threads. The backward is itself a differentiable
function (its derivative is the second-order loop), so forces can be trained; a third derivative
is refused. Built with -march=native and -ffast-math so the loops vectorise (float32 with its own
inline exp and log1p, float64 with glibc's vector ones), the extension's name carrying a hash of the
CPU; a portable -O3 build is the fallback.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .fused import fused_wanted, native_extension

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>

// exp(x) for x <= 0 and log1p(u) for u in [0, 1], inline so the loops vectorise without calls. float:
// exp by 2^n exp(r), |r| <= ln2/2, Taylor to r^7 (relative error < 1e-8 before rounding), x clamped at
// -87 (exp(-87) ~ 1.6e-38 stands in for smaller values); log1p(u) = u q(2u - 1) with q the degree-8
// Chebyshev fit of log1p(u)/u on [0, 1] (relative error < 2e-7, no division). double: the library's.
template <typename T> static inline T nexp(T x) { return std::exp(x); }
template <typename T> static inline T log1p01(T u) { return std::log1p(u); }
template <> inline float nexp<float>(float x) {
  x = std::max(x, -87.0f);
  const float n = std::floor(x * 1.44269504f + 0.5f);
  const float r = (x - n * 0.693145752f) - n * 1.42860677e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f; p = p * r + 1.0f / 120.0f; p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f; p = p * r + 0.5f; p = p * r + 1.0f; p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale; std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
template <> inline float log1p01<float>(float u) {
  static constexpr float c[9] = {8.109301925e-01f, -1.442633867e-01f, 3.315229714e-02f, -8.463365957e-03f, 2.289455384e-03f, -6.334416103e-04f, 1.813507697e-04f, -6.614314771e-05f, 2.025801768e-05f};
  const float y = 2.0f * u - 1.0f;
  float p = c[8];
  for (int n = 7; n >= 0; --n) p = p * y + c[n];
  return u * p;
}

constexpr int64_t W = 16;  // features per slice

struct Pairs { const int64_t *i, *j, *k; int64_t E; };

// The per-pair, per-feature quantities of one direction: gate and core sigmoids and the core's
// softplus, branch-free (one exp per half and a log1p, overflow-free for any z) so loops vectorise.
// (Plain locals, no structs: a struct in the loop body can keep GCC from vectorising it.)
template <typename T>
static inline void site(const T* Ar, const T* Bs, const T* t0, const T* t1, T a, T t, int64_t f, int64_t F,
                        T& sg, T& sc, T& spc) {
  const T zg = Ar[f] + Bs[f] + a * t0[f] + t * t1[f];
  const T zc = Ar[F + f] + Bs[F + f] + a * t0[F + f] + t * t1[F + f];
  const T eg = nexp(-std::abs(zg)), ec = nexp(-std::abs(zc));
  const T ig = T(1) / (T(1) + eg), ic = T(1) / (T(1) + ec);
  sg = zg >= T(0) ? ig : eg * ig;
  sc = zc >= T(0) ? ic : ec * ic;
  spc = std::max(zc, T(0)) + log1p01(ec);
}

// Calls body(slice, e, r, s, t0, t1, a, t, f0, f1) for every pair and both directions. Each thread owns
// a contiguous range of 16-wide feature slices [f0, f1) and passes over the pairs once: per-atom and
// per-grid-row sums never collide, and per-pair sums go to the thread's own row (its first slice) of a
// (slices, E, 2) buffer, summed afterwards in a fixed order.
template <typename T, typename Body>
static void sliced(const Pairs& p, const T* tab, const T* tt, int64_t F, Body body) {
  at::parallel_for(0, (F + W - 1) / W, 1, [&](int64_t c0, int64_t c1) {
    const int64_t f0 = c0 * W, f1 = std::min(F, c1 * W);
    for (int64_t e = 0; e < p.E; ++e) {
      const T t = tt[e], a = T(1) - t;
      const T* t0 = tab + p.k[e] * 2 * F; const T* t1 = t0 + 2 * F;
      body(c0, e, p.i[e], p.j[e], t0, t1, a, t, f0, f1);
      body(c0, e, p.j[e], p.i[e], t0, t1, a, t, f0, f1);
    }
  });
}

template <typename T>
static void fwd(const T* A, const T* B, const T* tab, const T* tt, const T* cc, const Pairs& p, T* Y, int64_t F) {
  sliced<T>(p, tab, tt, F, [&](int64_t, int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t,
                               int64_t f0, int64_t f1) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; T* Yr = Y + r * F; const T cut = cc[e];
    #pragma omp simd
    for (int64_t f = f0; f < f1; ++f) { T sg, sc, spc; site(Ar, Bs, t0, t1, a, t, f, F, sg, sc, spc); Yr[f] += cut * sg * spc; }
  });
}

// first order: gA[r] += dz, gB[s] += dz, gT[k] += (1 - t) dz, gT[k+1] += t dz with dz = G[r] c grad(phi)(z);
// per pair (gt, gc) += (dz . (T[k+1] - T[k]), G[r] . phi(z)), summed over directions and features
template <typename T>
static void bwd(const T* G, const T* A, const T* B, const T* tab, const T* tt, const T* cc, const Pairs& p,
                T* gA, T* gB, T* gT, T* part, int64_t F) {
  sliced<T>(p, tab, tt, F, [&](int64_t c, int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t,
                               int64_t f0, int64_t f1) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; const T* Gr = G + r * F; const T cut = cc[e];
    T* ar = gA + r * 2 * F; T* bs = gB + s * 2 * F; T* u0 = gT + p.k[e] * 2 * F; T* u1 = u0 + 2 * F;
    T gt = 0, gc = 0;
    #pragma omp simd reduction(+:gt, gc)
    for (int64_t f = f0; f < f1; ++f) {
      T sg, sc, spc; site(Ar, Bs, t0, t1, a, t, f, F, sg, sc, spc);
      const T u = Gr[f] * cut, dg = u * sg * (T(1) - sg) * spc, dc = u * sg * sc;
      ar[f] += dg; ar[F + f] += dc; bs[f] += dg; bs[F + f] += dc;
      u0[f] += a * dg; u0[F + f] += a * dc; u1[f] += t * dg; u1[F + f] += t * dc;
      gt += dg * (t1[f] - t0[f]) + dc * (t1[F + f] - t0[F + f]);
      gc += Gr[f] * sg * spc;
    }
    part[(c * p.E + e) * 2] += gt; part[(c * p.E + e) * 2 + 1] += gc;
  });
}

// Second order: cotangents hA, hB (N, 2F), hT (G, 2F), hp (E, 2) = (ht, hc) of the first order's outputs.
// q = hA[r] + hB[s] + (1 - t) hT[k] + t hT[k+1] + ht (T[k+1] - T[k]) is the cotangent of dz = u grad(phi)
// (u = G[r] c); wu = q . grad(phi) that of u, wz = u H q + hc G[r] grad(phi) that of z (H: phi's Hessian).
template <typename T>
static inline void second(T sg, T sc, T spc, T Gf, T cut, T qg, T qc, T hc, T& wu, T& wzg, T& wzc, T& dg, T& dc, T& phi) {
  const T sg1 = sg * (T(1) - sg), sg2 = sg1 * (T(1) - T(2) * sg), sc1 = sc * (T(1) - sc);
  const T pg = sg1 * spc, pc = sg * sc, u = Gf * cut;
  phi = sg * spc; dg = u * pg; dc = u * pc;
  wu = qg * pg + qc * pc;
  wzg = u * (qg * sg2 * spc + qc * sg1 * sc) + hc * Gf * pg;
  wzc = u * (qg * sg1 * sc + qc * sg * sc1) + hc * Gf * pc;
}

template <typename T>
static void bwd2(const T* G, const T* A, const T* B, const T* tab, const T* tt, const T* cc, const T* hA, const T* hB,
                 const T* hT, const T* hp, const Pairs& p, T* gG, T* gA, T* gB, T* gT, T* part, int64_t F) {
  sliced<T>(p, tab, tt, F, [&](int64_t c, int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t,
                               int64_t f0, int64_t f1) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; const T* Gr = G + r * F; const T cut = cc[e];
    const T* har = hA + r * 2 * F; const T* hbs = hB + s * 2 * F;
    const T* h0 = hT + p.k[e] * 2 * F; const T* h1 = h0 + 2 * F; const T ht = hp[2 * e], hc = hp[2 * e + 1];
    T* ar = gA + r * 2 * F; T* bs = gB + s * 2 * F; T* u0 = gT + p.k[e] * 2 * F; T* u1 = u0 + 2 * F; T* gr = gG + r * F;
    T gt = 0, gc = 0;
    #pragma omp simd reduction(+:gt, gc)
    for (int64_t f = f0; f < f1; ++f) {
      T sg, sc, spc; site(Ar, Bs, t0, t1, a, t, f, F, sg, sc, spc);
      const T dTg = t1[f] - t0[f], dTc = t1[F + f] - t0[F + f];
      const T qg = har[f] + hbs[f] + a * h0[f] + t * h1[f] + ht * dTg;
      const T qc = har[F + f] + hbs[F + f] + a * h0[F + f] + t * h1[F + f] + ht * dTc;
      T wu, wzg, wzc, dg, dc, phi; second(sg, sc, spc, Gr[f], cut, qg, qc, hc, wu, wzg, wzc, dg, dc, phi);
      gr[f] += cut * wu + hc * phi;
      ar[f] += wzg; ar[F + f] += wzc; bs[f] += wzg; bs[F + f] += wzc;
      u0[f] += a * wzg - ht * dg; u0[F + f] += a * wzc - ht * dc;
      u1[f] += t * wzg + ht * dg; u1[F + f] += t * wzc + ht * dc;
      gt += wzg * dTg + wzc * dTc + dg * (h1[f] - h0[f]) + dc * (h1[F + f] - h0[F + f]);
      gc += Gr[f] * wu;
    }
    part[(c * p.E + e) * 2] += gt; part[(c * p.E + e) * 2 + 1] += gc;
  });
}

#define PTR(x) x.data_ptr<scalar_t>()

static Pairs pairs(const torch::Tensor& i, const torch::Tensor& j, const torch::Tensor& k) {
  return Pairs{i.data_ptr<int64_t>(), j.data_ptr<int64_t>(), k.data_ptr<int64_t>(), i.size(0)};
}

torch::Tensor forward(torch::Tensor A, torch::Tensor B, torch::Tensor tab, torch::Tensor t, torch::Tensor c,
                      torch::Tensor i, torch::Tensor j, torch::Tensor k) {
  const int64_t F = A.size(1) / 2;
  auto Y = torch::zeros({A.size(0), F}, A.options());
  auto p = pairs(i, j, k);
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gate_fwd", [&] { fwd<scalar_t>(PTR(A), PTR(B), PTR(tab), PTR(t), PTR(c), p, PTR(Y), F); });
  return Y;
}

std::vector<torch::Tensor> backward(torch::Tensor G, torch::Tensor A, torch::Tensor B, torch::Tensor tab,
                                    torch::Tensor t, torch::Tensor c, torch::Tensor i, torch::Tensor j, torch::Tensor k) {
  const int64_t F = A.size(1) / 2;
  auto gA = torch::zeros_like(A), gB = torch::zeros_like(B), gT = torch::zeros_like(tab);
  auto part = torch::zeros({(F + W - 1) / W, i.size(0), 2}, A.options());
  auto p = pairs(i, j, k);
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gate_bwd", [&] {
    bwd<scalar_t>(PTR(G), PTR(A), PTR(B), PTR(tab), PTR(t), PTR(c), p, PTR(gA), PTR(gB), PTR(gT), PTR(part), F);
  });
  return {gA, gB, gT, part.sum(0)};
}

std::vector<torch::Tensor> backward2(torch::Tensor G, torch::Tensor A, torch::Tensor B, torch::Tensor tab,
                                     torch::Tensor t, torch::Tensor c, torch::Tensor hA, torch::Tensor hB,
                                     torch::Tensor hT, torch::Tensor hp, torch::Tensor i, torch::Tensor j, torch::Tensor k) {
  const int64_t F = A.size(1) / 2;
  auto gG = torch::zeros_like(G), gA = torch::zeros_like(A), gB = torch::zeros_like(B), gT = torch::zeros_like(tab);
  auto part = torch::zeros({(F + W - 1) / W, i.size(0), 2}, A.options());
  auto p = pairs(i, j, k);
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gate_bwd2", [&] {
    bwd2<scalar_t>(PTR(G), PTR(A), PTR(B), PTR(tab), PTR(t), PTR(c), PTR(hA), PTR(hB), PTR(hT), PTR(hp), p,
                   PTR(gG), PTR(gA), PTR(gB), PTR(gT), PTR(part), F);
  });
  return {gG, gA, gB, gT, part.sum(0)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
  m.def("backward2", &backward2);
}
"""


NAME = "kimtrain_gate_v5"


def _ext():
    """Built for this CPU (float: the inline exp and log1p above; double: glibc's libmvec)."""
    return native_extension(NAME, SOURCE)


def can_fuse_gate(x: torch.Tensor) -> bool:
    """The fused gate loops apply on the CPU (KIMTRAIN_FUSED=0 turns them off; without a C++
    compiler fused_error(NAME) says why they are off)."""
    return fused_wanted(x) and _ext() is not None


def _c(t):
    return t.contiguous()


class _Gate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, A, B, table, t, c, pairs):
        ctx.save_for_backward(A, B, table, t, c)
        ctx.pairs = pairs
        return _ext().forward(A, B, table, t, c, *pairs)

    @staticmethod
    def backward(ctx, G):
        A, B, table, t, c = ctx.saved_tensors
        gA, gB, gT, gp = _GateBack.apply(_c(G), A, B, table, t, c, ctx.pairs)
        gt, gc = gp.unbind(1)
        return gA, gB, gT, gt, gc, None


class _GateBack(torch.autograd.Function):
    @staticmethod
    def forward(ctx, G, A, B, table, t, c, pairs):
        ctx.save_for_backward(G, A, B, table, t, c)
        ctx.pairs = pairs
        return tuple(_ext().backward(G, A, B, table, t, c, *pairs))

    @staticmethod
    @once_differentiable
    def backward(ctx, hA, hB, hT, hp):
        G, A, B, table, t, c = ctx.saved_tensors
        gG, gA, gB, gT, gp = _ext().backward2(G, A, B, table, t, c, _c(hA), _c(hB), _c(hT), _c(hp), *ctx.pairs)
        return gG, gA, gB, gT, gp[:, 0], gp[:, 1], None


def gate_conv(A, B, table, i, j, k, t, c):
    """Y (N, F): for each stored pair (i, j) and both directions (r, s), Y[r] += c_e sigmoid(z_gate)
    softplus(z_core) with z = A[r] + B[s] + lerp(table[k_e], table[k_e + 1], t_e); A, B (N, 2F),
    table (G, 2F), k (E,) grid rows, t (E,) fractions, c (E,) cutoff values. Differentiable twice
    in A, B, table, t and c (forces, and training on them)."""
    t, c = t.to(A.dtype), c.to(A.dtype)
    return _Gate.apply(_c(A), _c(B), _c(table), _c(t), _c(c), (_c(i), _c(j), _c(k)))
