"""CGCNN's gated convolution on the CPU as fused loops (a C++ extension built on first use),
differentiable twice, so training on forces (a double backward) runs fused too.

For each stored pair e = (i, j) and each direction (r, s) in ((i, j), (j, i)),

    z = A[r] + B[s] + (1 - t_e) T[k_e] + t_e T[k_e + 1]                 (2F: gate half, core half)
    Y[r] += c_e * sigmoid(z_gate) * softplus(z_core)                     (F)

with A, B (N, 2F) the receiver and sender maps of the atom features, T (G, 2F) the edge term
tabulated on a distance grid (row k_e, fraction t_e), and c_e the cutoff function. The PyTorch
path materialises z, the gates and the messages (2 x pairs x 2F each, kept for the backward);
these loops recompute them from A, B and T instead, so memory stays at atoms x features.

Three loops per order: one over feature slices writing per-atom and per-grid-row sums (threads
own 16-wide slices, so no two write one element), one over pairs writing the per-pair scalars
(gradients of t and c). The backward is itself a differentiable function (its derivative is the
"second-order" pair of loops), so forces can be trained; a third derivative is refused.
"""
from __future__ import annotations

import os

import torch
from torch.autograd.function import once_differentiable

from .fused import build_extension

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>

constexpr int64_t W = 16;  // features per slice

template <typename T> static inline T sig(T x) { return T(1) / (T(1) + std::exp(-x)); }
template <typename T> static inline T softplus(T x) { return x > T(20) ? x : std::log1p(std::exp(x)); }

struct Pairs { const int64_t *i, *j, *k; int64_t E; };

// The per-pair, per-feature quantities of one direction; q* are the cotangents of the second order.
template <typename T>
struct Site {
  T zg, zc, sg, sc, spc;
  inline void at(const T* Ar, const T* Bs, const T* t0, const T* t1, T a, T t, int64_t f, int64_t F) {
    zg = Ar[f] + Bs[f] + a * t0[f] + t * t1[f];
    zc = Ar[F + f] + Bs[F + f] + a * t0[F + f] + t * t1[F + f];
    sg = sig(zg); sc = sig(zc); spc = softplus(zc);
  }
};

// Calls body(e, r, s, t0, t1, a, t) for every pair and direction, over the feature slice [f0, f1).
template <typename T, typename Body>
static void sliced(const Pairs& p, const T* tab, const T* tt, int64_t F, Body body) {
  at::parallel_for(0, (F + W - 1) / W, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t f0 = c * W, f1 = std::min(F, f0 + W);
      for (int64_t e = 0; e < p.E; ++e) {
        const T t = tt[e], a = T(1) - t;
        const T* t0 = tab + p.k[e] * 2 * F; const T* t1 = t0 + 2 * F;
        body(e, p.i[e], p.j[e], t0, t1, a, t, f0, f1);
        body(e, p.j[e], p.i[e], t0, t1, a, t, f0, f1);
      }
    }
  });
}

template <typename T, typename Body>
static void paired(const Pairs& p, const T* tab, const T* tt, int64_t F, Body body) {
  at::parallel_for(0, p.E, 256, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const T t = tt[e], a = T(1) - t;
      const T* t0 = tab + p.k[e] * 2 * F; const T* t1 = t0 + 2 * F;
      body(e, p.i[e], p.j[e], t0, t1, a, t);
      body(e, p.j[e], p.i[e], t0, t1, a, t);
    }
  });
}

template <typename T>
static void fwd(const T* A, const T* B, const T* tab, const T* tt, const T* cc, const Pairs& p, T* Y, int64_t F) {
  sliced<T>(p, tab, tt, F, [&](int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t, int64_t f0, int64_t f1) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; T* Yr = Y + r * F; const T cut = cc[e];
    Site<T> x;
    for (int64_t f = f0; f < f1; ++f) { x.at(Ar, Bs, t0, t1, a, t, f, F); Yr[f] += cut * x.sg * x.spc; }
  });
}

// first order, sliced: gA[r] += dz, gB[s] += dz, gT[k] += (1 - t) dz, gT[k+1] += t dz; dz = G[r] c grad(phi)(z)
template <typename T>
static void bwd(const T* G, const T* A, const T* B, const T* tab, const T* tt, const T* cc, const Pairs& p,
                T* gA, T* gB, T* gT, int64_t F) {
  sliced<T>(p, tab, tt, F, [&](int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t, int64_t f0, int64_t f1) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; const T* Gr = G + r * F; const T cut = cc[e];
    T* ar = gA + r * 2 * F; T* bs = gB + s * 2 * F; T* u0 = gT + p.k[e] * 2 * F; T* u1 = u0 + 2 * F;
    Site<T> x;
    for (int64_t f = f0; f < f1; ++f) {
      x.at(Ar, Bs, t0, t1, a, t, f, F);
      const T u = Gr[f] * cut, dg = u * x.sg * (T(1) - x.sg) * x.spc, dc = u * x.sg * x.sc;
      ar[f] += dg; ar[F + f] += dc; bs[f] += dg; bs[F + f] += dc;
      u0[f] += a * dg; u0[F + f] += a * dc; u1[f] += t * dg; u1[F + f] += t * dc;
    }
  });
}

// first order, per pair: (gt, gc)[e] = sum over directions and features of (dz . (T[k+1] - T[k]), G[r] phi(z))
template <typename T>
static void bwd_pair(const T* G, const T* A, const T* B, const T* tab, const T* tt, const T* cc, const Pairs& p,
                     T* out, int64_t F) {
  paired<T>(p, tab, tt, F, [&](int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; const T* Gr = G + r * F; const T cut = cc[e];
    T gt = 0, gc = 0;
    Site<T> x;
    for (int64_t f = 0; f < F; ++f) {
      x.at(Ar, Bs, t0, t1, a, t, f, F);
      const T u = Gr[f] * cut, dg = u * x.sg * (T(1) - x.sg) * x.spc, dc = u * x.sg * x.sc;
      gt += dg * (t1[f] - t0[f]) + dc * (t1[F + f] - t0[F + f]);
      gc += Gr[f] * x.sg * x.spc;
    }
    out[2 * e] += gt; out[2 * e + 1] += gc;
  });
}

// Second order: cotangents hA, hB (N, 2F), hT (G, 2F), hp (E, 2) = (ht, hc) of the first order's outputs.
// q = hA[r] + hB[s] + (1 - t) hT[k] + t hT[k+1] + ht (T[k+1] - T[k]) is the cotangent of dz; H is phi's Hessian.
template <typename T>
struct Second {
  T wu, wzg, wzc, dg, dc, phi;
  inline void at(const Site<T>& x, T Gf, T cut, T qg, T qc, T hc) {
    const T sg1 = x.sg * (T(1) - x.sg), sg2 = sg1 * (T(1) - T(2) * x.sg), sc1 = x.sc * (T(1) - x.sc);
    const T pg = sg1 * x.spc, pc = x.sg * x.sc, u = Gf * cut;
    phi = x.sg * x.spc; dg = u * pg; dc = u * pc;
    wu = qg * pg + qc * pc;
    wzg = u * (qg * sg2 * x.spc + qc * sg1 * x.sc) + hc * Gf * pg;
    wzc = u * (qg * sg1 * x.sc + qc * x.sg * sc1) + hc * Gf * pc;
  }
};

template <typename T>
static void bwd2(const T* G, const T* A, const T* B, const T* tab, const T* tt, const T* cc, const T* hA, const T* hB,
                 const T* hT, const T* hp, const Pairs& p, T* gG, T* gA, T* gB, T* gT, int64_t F) {
  sliced<T>(p, tab, tt, F, [&](int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t, int64_t f0, int64_t f1) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; const T* Gr = G + r * F; const T cut = cc[e];
    const T* har = hA + r * 2 * F; const T* hbs = hB + s * 2 * F;
    const T* h0 = hT + p.k[e] * 2 * F; const T* h1 = h0 + 2 * F; const T ht = hp[2 * e], hc = hp[2 * e + 1];
    T* ar = gA + r * 2 * F; T* bs = gB + s * 2 * F; T* u0 = gT + p.k[e] * 2 * F; T* u1 = u0 + 2 * F; T* gr = gG + r * F;
    Site<T> x; Second<T> y;
    for (int64_t f = f0; f < f1; ++f) {
      x.at(Ar, Bs, t0, t1, a, t, f, F);
      const T qg = har[f] + hbs[f] + a * h0[f] + t * h1[f] + ht * (t1[f] - t0[f]);
      const T qc = har[F + f] + hbs[F + f] + a * h0[F + f] + t * h1[F + f] + ht * (t1[F + f] - t0[F + f]);
      y.at(x, Gr[f], cut, qg, qc, hc);
      gr[f] += cut * y.wu + hc * y.phi;
      ar[f] += y.wzg; ar[F + f] += y.wzc; bs[f] += y.wzg; bs[F + f] += y.wzc;
      u0[f] += a * y.wzg - ht * y.dg; u0[F + f] += a * y.wzc - ht * y.dc;
      u1[f] += t * y.wzg + ht * y.dg; u1[F + f] += t * y.wzc + ht * y.dc;
    }
  });
}

template <typename T>
static void bwd2_pair(const T* G, const T* A, const T* B, const T* tab, const T* tt, const T* cc, const T* hA,
                      const T* hB, const T* hT, const T* hp, const Pairs& p, T* out, int64_t F) {
  paired<T>(p, tab, tt, F, [&](int64_t e, int64_t r, int64_t s, const T* t0, const T* t1, T a, T t) {
    const T* Ar = A + r * 2 * F; const T* Bs = B + s * 2 * F; const T* Gr = G + r * F; const T cut = cc[e];
    const T* har = hA + r * 2 * F; const T* hbs = hB + s * 2 * F;
    const T* h0 = hT + p.k[e] * 2 * F; const T* h1 = h0 + 2 * F; const T ht = hp[2 * e], hc = hp[2 * e + 1];
    T gt = 0, gc = 0;
    Site<T> x; Second<T> y;
    for (int64_t f = 0; f < F; ++f) {
      x.at(Ar, Bs, t0, t1, a, t, f, F);
      const T dTg = t1[f] - t0[f], dTc = t1[F + f] - t0[F + f];
      const T qg = har[f] + hbs[f] + a * h0[f] + t * h1[f] + ht * dTg;
      const T qc = har[F + f] + hbs[F + f] + a * h0[F + f] + t * h1[F + f] + ht * dTc;
      y.at(x, Gr[f], cut, qg, qc, hc);
      gt += y.wzg * dTg + y.wzc * dTc + y.dg * (h1[f] - h0[f]) + y.dc * (h1[F + f] - h0[F + f]);
      gc += Gr[f] * y.wu;
    }
    out[2 * e] += gt; out[2 * e + 1] += gc;
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
  auto gp = torch::zeros({i.size(0), 2}, A.options());
  auto p = pairs(i, j, k);
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gate_bwd", [&] {
    bwd<scalar_t>(PTR(G), PTR(A), PTR(B), PTR(tab), PTR(t), PTR(c), p, PTR(gA), PTR(gB), PTR(gT), F);
    bwd_pair<scalar_t>(PTR(G), PTR(A), PTR(B), PTR(tab), PTR(t), PTR(c), p, PTR(gp), F);
  });
  return {gA, gB, gT, gp};
}

std::vector<torch::Tensor> backward2(torch::Tensor G, torch::Tensor A, torch::Tensor B, torch::Tensor tab,
                                     torch::Tensor t, torch::Tensor c, torch::Tensor hA, torch::Tensor hB,
                                     torch::Tensor hT, torch::Tensor hp, torch::Tensor i, torch::Tensor j, torch::Tensor k) {
  const int64_t F = A.size(1) / 2;
  auto gG = torch::zeros_like(G), gA = torch::zeros_like(A), gB = torch::zeros_like(B), gT = torch::zeros_like(tab);
  auto gp = torch::zeros({i.size(0), 2}, A.options());
  auto p = pairs(i, j, k);
  AT_DISPATCH_FLOATING_TYPES(A.scalar_type(), "gate_bwd2", [&] {
    bwd2<scalar_t>(PTR(G), PTR(A), PTR(B), PTR(tab), PTR(t), PTR(c), PTR(hA), PTR(hB), PTR(hT), PTR(hp), p,
                   PTR(gG), PTR(gA), PTR(gB), PTR(gT), F);
    bwd2_pair<scalar_t>(PTR(G), PTR(A), PTR(B), PTR(tab), PTR(t), PTR(c), PTR(hA), PTR(hB), PTR(hT), PTR(hp), p,
                        PTR(gp), F);
  });
  return {gG, gA, gB, gT, gp};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
  m.def("backward2", &backward2);
}
"""


NAME = "kimtrain_gate_v1"


def _ext():
    return build_extension(NAME, SOURCE)


def can_fuse_gate(x: torch.Tensor) -> bool:
    """The fused gate loops apply on the CPU (KIMTRAIN_FUSED=0 turns them off; without a C++
    compiler fused_error(NAME) says why they are off)."""
    if x.device.type != "cpu" or os.environ.get("KIMTRAIN_FUSED", "1") == "0":
        return False
    return _ext() is not None


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
