"""SchNet's continuous-filter convolution on the CPU as one fused loop (a C++ extension built on first use).

For each stored pair (i, j) and each feature f, with the filter interpolated from the table,
w = T[k, f] + t (T[k+1, f] - T[k, f]):  agg[i, f] += x[j, f] w  and  agg[j, f] += x[i, f] w.
The pure-PyTorch path materialises gathers, products and the interpolated filters (pairs x
features each); this loop reads each pair once and writes nothing per pair. Threads split the
features into 16-wide slices, so no two threads touch the same element: results are deterministic.

Used for energies and energy gradients with respect to weights (training, inference); when
positions need gradients (forces) SchNet uses the PyTorch path, which supports double backward.
Set KIMTRAIN_FUSED=0 to use the PyTorch path everywhere. If the extension cannot be built (no C++
compiler), the PyTorch path is used and `fused_error()` says why.
"""
from __future__ import annotations

import os

import torch

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

constexpr int64_t W = 16;  // features per slice

template <typename T>
static void conv_forward(const T* x, const T* tab, const int64_t* ii, const int64_t* jj, const int64_t* kk,
                         const T* tt, T* agg, int64_t E, int64_t F) {
  at::parallel_for(0, (F + W - 1) / W, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t f0 = c * W, f1 = std::min(F, f0 + W);
      for (int64_t e = 0; e < E; ++e) {
        const T* xa = x + ii[e] * F; const T* xb = x + jj[e] * F;
        const T* t0 = tab + kk[e] * F; const T* t1 = t0 + F; const T t = tt[e];
        T* ga = agg + ii[e] * F; T* gb = agg + jj[e] * F;
        #pragma omp simd
        for (int64_t f = f0; f < f1; ++f) {
          const T w = t0[f] + t * (t1[f] - t0[f]);
          ga[f] += xb[f] * w;
          gb[f] += xa[f] * w;
        }
      }
    }
  });
}

template <typename T>
static void conv_backward(const T* g, const T* x, const T* tab, const int64_t* ii, const int64_t* jj,
                          const int64_t* kk, const T* tt, T* gx, T* gtab, int64_t E, int64_t F) {
  at::parallel_for(0, (F + W - 1) / W, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t f0 = c * W, f1 = std::min(F, f0 + W);
      for (int64_t e = 0; e < E; ++e) {
        const int64_t a = ii[e], b = jj[e];
        const T* t0 = tab + kk[e] * F; const T* t1 = t0 + F; const T t = tt[e];
        T* g0 = gtab + kk[e] * F; T* g1 = g0 + F;
        #pragma omp simd
        for (int64_t f = f0; f < f1; ++f) {
          const T w = t0[f] + t * (t1[f] - t0[f]);
          const T ga = g[a * F + f], gb = g[b * F + f];
          gx[b * F + f] += ga * w;
          gx[a * F + f] += gb * w;
          const T gw = ga * x[b * F + f] + gb * x[a * F + f];
          g0[f] += (T(1) - t) * gw;
          g1[f] += t * gw;
        }
      }
    }
  });
}

torch::Tensor forward(torch::Tensor x, torch::Tensor tab, torch::Tensor i, torch::Tensor j, torch::Tensor k,
                      torch::Tensor t) {
  auto agg = torch::zeros_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cfconv_forward", [&] {
    conv_forward<scalar_t>(x.data_ptr<scalar_t>(), tab.data_ptr<scalar_t>(), i.data_ptr<int64_t>(),
                           j.data_ptr<int64_t>(), k.data_ptr<int64_t>(), t.data_ptr<scalar_t>(),
                           agg.data_ptr<scalar_t>(), i.size(0), x.size(1));
  });
  return agg;
}

std::vector<torch::Tensor> backward(torch::Tensor g, torch::Tensor x, torch::Tensor tab, torch::Tensor i,
                                    torch::Tensor j, torch::Tensor k, torch::Tensor t) {
  auto gx = torch::zeros_like(x);
  auto gtab = torch::zeros_like(tab);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cfconv_backward", [&] {
    conv_backward<scalar_t>(g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), tab.data_ptr<scalar_t>(),
                            i.data_ptr<int64_t>(), j.data_ptr<int64_t>(), k.data_ptr<int64_t>(),
                            t.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), gtab.data_ptr<scalar_t>(),
                            i.size(0), x.size(1));
  });
  return {gx, gtab};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward);
  m.def("backward", &backward);
}
"""

_EXT, _ERROR = None, None


def _extension():
    """The compiled extension (built once per machine, cached by torch), or None with _ERROR set."""
    global _EXT, _ERROR
    if _EXT is None and _ERROR is None:
        try:
            from torch.utils.cpp_extension import load_inline
            _EXT = load_inline("kimtrain_cfconv_v1", cpp_sources=SOURCE, extra_cflags=["-O3"], verbose=False)
        except Exception as exc:  # no compiler, no headers: the PyTorch path still works
            _ERROR = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    return _EXT


def fused_error() -> str | None:
    """Why the fused kernel is unavailable (None when it is available or not yet tried)."""
    return _ERROR


def can_fuse(x: torch.Tensor, d: torch.Tensor) -> bool:
    """The fused loop applies on the CPU when no gradient with respect to positions is needed."""
    if x.device.type != "cpu" or d.requires_grad or os.environ.get("KIMTRAIN_FUSED", "1") == "0":
        return False
    return _extension() is not None


class _CFConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, i, j, k, t):
        ctx.save_for_backward(x, table, i, j, k, t)
        return _EXT.forward(x, table, i, j, k, t)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, table, i, j, k, t = ctx.saved_tensors
        gx, gtab = _EXT.backward(grad.contiguous(), x, table, i, j, k, t)
        return gx, gtab, None, None, None, None


def fused_conv(x, table, i, j, k, t):
    """agg (N, F): messages x_j w_ij into i and x_i w_ij into j over the stored pairs, with w_ij
    interpolated from table (G, F) at grid index k (E,) and fraction t (E,)."""
    return _CFConv.apply(x.contiguous(), table.contiguous(), i, j, k, t.to(x.dtype).contiguous())
