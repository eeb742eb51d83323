"""GemNet's triplet sums on the CPU as fused loops (a C++ extension built on first use),
differentiable to any order, so training on forces (a double backward) runs fused too.

A block sends the edge features x (E, C) through every triplet t = (a, b), edge a = k -> j into
edge b = j -> i, weighted by a spherical basis: P_l(cos_t) times a radial basis of d_a mapped to C
features by W (C, L, R). Since the radial part depends on edge a only, it is folded into a per-edge
tensor first, Y[a, l, c] = x[a, c] sum_r rbf[a, r] W[c, l, r] (E x L x C, edge-sized), and the
triplets only carry the L Legendre values:

    contract(Y, P)[b, c] = sum_{t in b} sum_l P[t, l] Y[a_t, l, c]          (n_b, C)

which is the PyTorch path's sum of x[a] * spherical(P (x) rbf[a]) into b, with L x C products per
triplet instead of (L R) x C, and no triplet x C tensor. Its derivatives are two more bilinear loops,

    spread(G, P)[a, l, c] = sum_{t: a_t = a} P[t, l] G[b_t, c]             (E, L, C)
    pair(Y, G)[t, l]      = sum_c Y[a_t, l, c] G[b_t, c]                    (T, L)

and each of the three is the others' derivative, so every order is a call of one of them. Loops run
over their output's rows (contract over b, spread over a through the triplets ordered by a, pair
over triplets), so no two threads write one element and results do not depend on the number of
threads. KIMTRAIN_FUSED=0 selects the PyTorch path.
"""
from __future__ import annotations

import torch

from .fused import fused_wanted, native_extension

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

// out[b, :] = sum_{t in [bptr[b], bptr[b+1])} sum_l P[t, l] Y[a[t], l, :], b taken in the order `border`
torch::Tensor contract(torch::Tensor Y, torch::Tensor P, torch::Tensor a, torch::Tensor bptr, torch::Tensor border) {
  const int64_t nb = bptr.size(0) - 1, L = Y.size(1), C = Y.size(2);
  auto out = torch::zeros({nb, C}, Y.options());
  AT_DISPATCH_FLOATING_TYPES(Y.scalar_type(), "contract", [&] {
    const scalar_t *y = Y.data_ptr<scalar_t>(), *p = P.data_ptr<scalar_t>();
    const int64_t *ai = a.data_ptr<int64_t>(), *bp = bptr.data_ptr<int64_t>(), *bo = border.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, nb, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        const int64_t b = bo[k];
        scalar_t* ob = o + b * C;
        for (int64_t t = bp[b]; t < bp[b + 1]; ++t) {
          const scalar_t* ya = y + ai[t] * L * C;
          const scalar_t* pt = p + t * L;
          for (int64_t l = 0; l < L; ++l) {
            const scalar_t w = pt[l];
            const scalar_t* yl = ya + l * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) ob[c] += w * yl[c];
          }
        }
      }
    });
  });
  return out;
}

// out[a, l, :] = sum_{t with a_t = a} P[t, l] G[b[t], :], the triplets of a being perm[aptr[a]:aptr[a+1]],
// a taken in the order `aorder`
torch::Tensor spread(torch::Tensor G, torch::Tensor P, torch::Tensor b, torch::Tensor perm, torch::Tensor aptr,
                     torch::Tensor aorder) {
  const int64_t ne = aptr.size(0) - 1, L = P.size(1), C = G.size(1);
  auto out = torch::zeros({ne, L, C}, G.options());
  AT_DISPATCH_FLOATING_TYPES(G.scalar_type(), "spread", [&] {
    const scalar_t *g = G.data_ptr<scalar_t>(), *p = P.data_ptr<scalar_t>();
    const int64_t *bi = b.data_ptr<int64_t>(), *pm = perm.data_ptr<int64_t>(), *ap = aptr.data_ptr<int64_t>();
    const int64_t *ao = aorder.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, ne, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        const int64_t e = ao[k];
        scalar_t* oe = o + e * L * C;
        for (int64_t s = ap[e]; s < ap[e + 1]; ++s) {
          const int64_t t = pm[s];
          const scalar_t* gb = g + bi[t] * C;
          const scalar_t* pt = p + t * L;
          for (int64_t l = 0; l < L; ++l) {
            const scalar_t w = pt[l];
            scalar_t* ol = oe + l * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) ol[c] += w * gb[c];
          }
        }
      }
    });
  });
  return out;
}

// out[t, l] = sum_c Y[a[t], l, c] G[b[t], c], by b in the order `border` and the triplets of each b
torch::Tensor pair(torch::Tensor Y, torch::Tensor G, torch::Tensor a, torch::Tensor bptr, torch::Tensor border) {
  const int64_t nt = a.size(0), nb = bptr.size(0) - 1, L = Y.size(1), C = Y.size(2);
  auto out = torch::empty({nt, L}, Y.options());
  AT_DISPATCH_FLOATING_TYPES(Y.scalar_type(), "pair", [&] {
    const scalar_t *y = Y.data_ptr<scalar_t>(), *g = G.data_ptr<scalar_t>();
    const int64_t *ai = a.data_ptr<int64_t>(), *bp = bptr.data_ptr<int64_t>(), *bo = border.data_ptr<int64_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, nb, 64, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        const int64_t b = bo[k];
        const scalar_t* gb = g + b * C;
        for (int64_t t = bp[b]; t < bp[b + 1]; ++t) {
          const scalar_t* ya = y + ai[t] * L * C;
          for (int64_t l = 0; l < L; ++l) {
            const scalar_t* yl = ya + l * C;
            scalar_t s = 0;
#pragma omp simd reduction(+:s)
            for (int64_t c = 0; c < C; ++c) s += yl[c] * gb[c];
            o[t * L + l] = s;
          }
        }
      }
    });
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("contract", &contract);
  m.def("spread", &spread);
  m.def("pair", &pair);
}
"""

NAME = "kimtrain_triplets_v2"


def _ext():
    return native_extension(NAME, SOURCE)


def can_fuse_triplets(x: torch.Tensor) -> bool:
    """The fused triplet loops apply on the CPU (KIMTRAIN_FUSED=0 turns them off; without a C++
    compiler fused_error(NAME) says why they are off)."""
    return fused_wanted(x) and _ext() is not None


class TripletIndex:
    """The triplets of one chunk in the orders the loops need: a (T,) and b (T,) (b local to the
    chunk, ascending), bptr (n_b + 1,) the start of each b's triplets, perm (T,) the triplets
    ordered by a and aptr (n_edges + 1,) the start of each a's among them. The loops visit the b
    in the order `border` and the a in the order `aorder` (default: ascending): given as the b by
    their source atom and the a by their target atom, consecutive rows read the same few rows of
    their input (the edges meeting at one atom), which then stay in cache."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, n_b: int, n_edges: int,
                 border: torch.Tensor | None = None, aorder: torch.Tensor | None = None):
        self.a, self.b = a.contiguous(), b.contiguous()
        self.bptr = _offsets(self.b, n_b)
        self.perm = torch.argsort(self.a, stable=True)
        self.aptr = _offsets(self.a, n_edges)
        self.border = (torch.arange(n_b) if border is None else border).contiguous()
        self.aorder = (torch.arange(n_edges) if aorder is None else aorder).contiguous()


def _offsets(index: torch.Tensor, n: int) -> torch.Tensor:
    count = torch.bincount(index, minlength=n)
    return torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])


def _call(op: str, u, v, idx):
    """The loop `op` on its two operands (see the module docstring)."""
    ext = _ext()
    if op == "contract":
        return ext.contract(u, v, idx.a, idx.bptr, idx.border)
    if op == "spread":
        return ext.spread(u, v, idx.b, idx.perm, idx.aptr, idx.aorder)
    return ext.pair(u, v, idx.a, idx.bptr, idx.border)


# each loop's derivatives in its two operands u, v for an incoming gradient g: other loops' calls
_DERIVATIVES = {
    "contract": (lambda u, v, g, idx: spread(g, v, idx), lambda u, v, g, idx: pair(u, g, idx)),
    "spread": (lambda u, v, g, idx: contract(g, v, idx), lambda u, v, g, idx: pair(g, u, idx)),
    "pair": (lambda u, v, g, idx: spread(v, g, idx), lambda u, v, g, idx: contract(u, g, idx)),
}


class _Bilinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, op, u, v, idx):
        ctx.save_for_backward(u, v)
        ctx.op, ctx.idx = op, idx
        return _call(op, u, v, idx)

    @staticmethod
    def backward(ctx, g):
        u, v = ctx.saved_tensors
        g = g.contiguous()
        return (None, *(d(u, v, g, ctx.idx) if need else None
                        for d, need in zip(_DERIVATIVES[ctx.op], ctx.needs_input_grad[1:3])), None)


class _Interact(torch.autograd.Function):
    """contract(Y, P) with Y = (rbf @ Wf).view(E, L, C) * x[:, None, :] built inside and rebuilt in
    the backward: only x, rbf, Wf and P are kept, not the two (E, L, C) tensors."""

    @staticmethod
    def forward(ctx, x, rbf, Wf, P, idx):
        ctx.save_for_backward(x, rbf, Wf, P)
        ctx.idx = idx
        Y = (rbf @ Wf).view(len(x), P.shape[1], -1).mul_(x[:, None, :])
        return _call("contract", Y, P, idx)

    @staticmethod
    def backward(ctx, g):
        x, rbf, Wf, P = ctx.saved_tensors
        need = ctx.needs_input_grad
        R = (rbf @ Wf).view(len(x), P.shape[1], -1)
        gx = grbf = gW = gP = None
        if any(need[:3]):
            S = spread(g, P, ctx.idx)
            gx = (S * R).sum(1) if need[0] else None
            gR = (S * x[:, None, :]).flatten(1)
            grbf = gR @ Wf.T if need[1] else None
            gW = rbf.T @ gR if need[2] else None
        if need[3]:
            gP = pair(R * x[:, None, :], g, ctx.idx)
        return gx, grbf, gW, gP, None


def interact(x: torch.Tensor, rbf: torch.Tensor, Wf: torch.Tensor, P: torch.Tensor, idx: TripletIndex) -> torch.Tensor:
    """contract(Y, P) for Y[a, l, c] = x[a, c] (rbf @ Wf)[a, l C + c]: x (E, C) edge features, rbf (E, R),
    Wf (R, L C), P (T, L); the per-edge (E, L, C) tensors are not kept for the backward."""
    return _Interact.apply(x.contiguous(), rbf.contiguous(), Wf.contiguous(), P.contiguous(), idx)


def contract(Y: torch.Tensor, P: torch.Tensor, idx: TripletIndex) -> torch.Tensor:
    """(n_b, C): sum over the triplets t of each b of sum_l P[t, l] Y[a_t, l, :]; Y (E, L, C), P (T, L)."""
    return _Bilinear.apply("contract", Y.contiguous(), P.contiguous(), idx)


def spread(G: torch.Tensor, P: torch.Tensor, idx: TripletIndex) -> torch.Tensor:
    """(E, L, C): sum over the triplets t of each a of P[t, l] G[b_t, :]; G (n_b, C), P (T, L)."""
    return _Bilinear.apply("spread", G.contiguous(), P.contiguous(), idx)


def pair(Y: torch.Tensor, G: torch.Tensor, idx: TripletIndex) -> torch.Tensor:
    """(T, L): Y[a_t, l, :] . G[b_t, :] per triplet; Y (E, L, C), G (n_b, C)."""
    return _Bilinear.apply("pair", Y.contiguous(), G.contiguous(), idx)
