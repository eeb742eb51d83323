"""SchNet's continuous-filter convolution on the CPU as fused loops (a C++ extension built on first use),
differentiable to any order, so training on forces (a double backward) runs fused too.

For each stored pair e = (i, j) the filter is interpolated from a table T (G, F) at grid row k_e,
w_e = a_e T[k_e] + b_e T[k_e + 1] (SchNet: a = 1 - t, b = t), and the convolution is
    conv(x, T, a, b):  out[i] += x[j] w_e,  out[j] += x[i] w_e.
Its derivatives are two more pair loops, and theirs are the same three, so the set is closed:
    scat(x, y, a, b):  out[k_e] += a_e s_e,  out[k_e + 1] += b_e s_e       (G, F), s_e = x[i] y[j] + x[j] y[i]
    pdot(x, y, T):     out[e] = (T[k_e] . s_e, T[k_e + 1] . s_e)            (E, 2)
d conv: x -> conv(g, T, a, b), T -> scat(g, x, a, b), (a, b) -> pdot(g, x, T);
d scat: x -> conv(y, h, a, b), y -> conv(x, h, a, b), (a, b) -> pdot(x, y, h);
d pdot: x -> conv(y, T, u0, u1), y -> conv(x, T, u0, u1), T -> scat(x, y, u0, u1).
The PyTorch path materialises gathers, products and interpolated filters (pairs x features each);
these loops read each pair once. conv and scat split the features among threads in 16-wide
slices and pdot splits the pairs, so no two threads write one element: results are deterministic.

Set KIMTRAIN_FUSED=0 to use the PyTorch path everywhere. If the extension cannot be built (no C++
compiler), the PyTorch path is used and `fused_error()` says why.
"""
from __future__ import annotations

import functools

import os

import torch

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

constexpr int64_t W = 16;  // features per slice

// out[i] += x[j] w, out[j] += x[i] w, w = a T[k] + b T[k+1]
template <typename T>
static void conv_loop(const T* x, const T* tab, const int64_t* ii, const int64_t* jj, const int64_t* kk,
                      const T* aa, const T* bb, T* out, int64_t E, int64_t F) {
  at::parallel_for(0, (F + W - 1) / W, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t f0 = c * W, f1 = std::min(F, f0 + W);
      for (int64_t e = 0; e < E; ++e) {
        const T* xi = x + ii[e] * F; const T* xj = x + jj[e] * F;
        const T* t0 = tab + kk[e] * F; const T* t1 = t0 + F; const T a = aa[e], b = bb[e];
        T* oi = out + ii[e] * F; T* oj = out + jj[e] * F;
        #pragma omp simd
        for (int64_t f = f0; f < f1; ++f) {
          const T w = a * t0[f] + b * t1[f];
          oi[f] += xj[f] * w;
          oj[f] += xi[f] * w;
        }
      }
    }
  });
}

// out[k] += a s, out[k+1] += b s, s = x[i] y[j] + x[j] y[i]
template <typename T>
static void scat_loop(const T* x, const T* y, const int64_t* ii, const int64_t* jj, const int64_t* kk,
                      const T* aa, const T* bb, T* out, int64_t E, int64_t F) {
  at::parallel_for(0, (F + W - 1) / W, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t f0 = c * W, f1 = std::min(F, f0 + W);
      for (int64_t e = 0; e < E; ++e) {
        const T* xi = x + ii[e] * F; const T* xj = x + jj[e] * F;
        const T* yi = y + ii[e] * F; const T* yj = y + jj[e] * F;
        T* o0 = out + kk[e] * F; T* o1 = o0 + F; const T a = aa[e], b = bb[e];
        #pragma omp simd
        for (int64_t f = f0; f < f1; ++f) {
          const T s = xi[f] * yj[f] + xj[f] * yi[f];
          o0[f] += a * s;
          o1[f] += b * s;
        }
      }
    }
  });
}

// out[e] = (T[k] . s, T[k+1] . s), s = x[i] y[j] + x[j] y[i]
template <typename T>
static void pdot_loop(const T* x, const T* y, const T* tab, const int64_t* ii, const int64_t* jj,
                      const int64_t* kk, T* out, int64_t E, int64_t F) {
  at::parallel_for(0, E, 256, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const T* xi = x + ii[e] * F; const T* xj = x + jj[e] * F;
      const T* yi = y + ii[e] * F; const T* yj = y + jj[e] * F;
      const T* t0 = tab + kk[e] * F; const T* t1 = t0 + F;
      T d0 = 0, d1 = 0;
      #pragma omp simd reduction(+:d0, d1)
      for (int64_t f = 0; f < F; ++f) {
        const T s = xi[f] * yj[f] + xj[f] * yi[f];
        d0 += t0[f] * s;
        d1 += t1[f] * s;
      }
      out[2 * e] = d0;
      out[2 * e + 1] = d1;
    }
  });
}

torch::Tensor conv(torch::Tensor x, torch::Tensor tab, torch::Tensor a, torch::Tensor b, torch::Tensor i,
                   torch::Tensor j, torch::Tensor k) {
  auto out = torch::zeros_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cfconv_conv", [&] {
    conv_loop<scalar_t>(x.data_ptr<scalar_t>(), tab.data_ptr<scalar_t>(), i.data_ptr<int64_t>(),
                        j.data_ptr<int64_t>(), k.data_ptr<int64_t>(), a.data_ptr<scalar_t>(),
                        b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), i.size(0), x.size(1));
  });
  return out;
}

torch::Tensor scat(torch::Tensor x, torch::Tensor y, torch::Tensor a, torch::Tensor b, torch::Tensor i,
                   torch::Tensor j, torch::Tensor k, int64_t rows) {
  auto out = torch::zeros({rows, x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cfconv_scat", [&] {
    scat_loop<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), i.data_ptr<int64_t>(),
                        j.data_ptr<int64_t>(), k.data_ptr<int64_t>(), a.data_ptr<scalar_t>(),
                        b.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), i.size(0), x.size(1));
  });
  return out;
}

torch::Tensor pdot(torch::Tensor x, torch::Tensor y, torch::Tensor tab, torch::Tensor i, torch::Tensor j,
                   torch::Tensor k) {
  auto out = torch::empty({i.size(0), 2}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cfconv_pdot", [&] {
    pdot_loop<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), tab.data_ptr<scalar_t>(),
                        i.data_ptr<int64_t>(), j.data_ptr<int64_t>(), k.data_ptr<int64_t>(),
                        out.data_ptr<scalar_t>(), i.size(0), x.size(1));
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("conv", &conv);
  m.def("scat", &scat);
  m.def("pdot", &pdot);
}
"""

_BUILT: dict = {}   # extension name -> (module or None, error or None)


def build_extension(name: str, source: str, flags=("-O3",)):
    """The C++ extension `name` compiled from `source` with `flags` (once per machine, cached by
    torch), or None when it cannot be built (no compiler or headers): fused_error(name) says why."""
    if name not in _BUILT:
        try:
            from torch.utils.cpp_extension import load_inline
            _BUILT[name] = (load_inline(name, cpp_sources=source, extra_cflags=list(flags), verbose=False), None)
        except Exception as exc:  # no compiler, no headers: the PyTorch path still works
            text = str(exc).strip()
            _BUILT[name] = (None, f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}")
    return _BUILT[name][0]


@functools.cache
def cpu_tag() -> str:
    """A short hash of this CPU's model and instruction-set flags (read once per process): extensions
    built for the CPU they run on (-march=native) carry it in their name, so machines sharing a home
    folder (a cluster) each build their own."""
    import hashlib
    import platform
    try:
        lines = [l for l in open("/proc/cpuinfo").read().splitlines() if l.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = [platform.processor(), platform.machine()]
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()[:10]


NATIVE_FLAGS = ("-O3", "-ffast-math", "-fopenmp-simd", "-march=native")  # the loops vectorise at the CPU's width


def native_extension(name: str, source: str):
    """`source` built for this CPU (NATIVE_FLAGS, named after cpu_tag()), once per process; the
    portable -O3 build if that fails; None if neither builds (fused_error says why)."""
    ext = build_extension(f"{name}_{cpu_tag()}", source, NATIVE_FLAGS)
    return ext if ext is not None else build_extension(name, source)


def fused_wanted(x: torch.Tensor) -> bool:
    """Whether fused loops should serve x: on the CPU, unless KIMTRAIN_FUSED=0."""
    return x.device.type == "cpu" and os.environ.get("KIMTRAIN_FUSED", "1") != "0"


def _extension():
    return build_extension("kimtrain_cfconv_v2", SOURCE)


def fused_error(name: str = "kimtrain_cfconv_v2") -> str | None:
    """Why a fused extension is unavailable (None when it is available or not yet tried)."""
    return _BUILT.get(name, (None, None))[1]


def can_fuse(x: torch.Tensor) -> bool:
    """The fused loops apply on the CPU (energies, forces, and their gradients to any order)."""
    return fused_wanted(x) and _extension() is not None


def _c(t):
    return t.contiguous()


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, a, b, pairs):
        ctx.save_for_backward(x, table, a, b)
        ctx.pairs = pairs
        return _extension().conv(x, table, a, b, *pairs)

    @staticmethod
    def backward(ctx, g):
        x, table, a, b = ctx.saved_tensors
        g, need = _c(g), ctx.needs_input_grad
        gx = conv(g, table, a, b, ctx.pairs) if need[0] else None
        gt = scat(g, x, a, b, ctx.pairs, len(table)) if need[1] else None
        ga = gb = None
        if need[2] or need[3]:
            ga, gb = _c(pdot(g, x, table, ctx.pairs)).unbind(1)
        return gx, gt, ga, gb, None


class _Scat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, a, b, pairs, rows):
        ctx.save_for_backward(x, y, a, b)
        ctx.pairs = pairs
        return _extension().scat(x, y, a, b, *pairs, rows)

    @staticmethod
    def backward(ctx, h):
        x, y, a, b = ctx.saved_tensors
        h, need = _c(h), ctx.needs_input_grad
        gx = conv(y, h, a, b, ctx.pairs) if need[0] else None
        gy = conv(x, h, a, b, ctx.pairs) if need[1] else None
        ga = gb = None
        if need[2] or need[3]:
            ga, gb = _c(pdot(x, y, h, ctx.pairs)).unbind(1)
        return gx, gy, ga, gb, None, None


class _PDot(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, table, pairs):
        ctx.save_for_backward(x, y, table)
        ctx.pairs = pairs
        return _extension().pdot(x, y, table, *pairs)

    @staticmethod
    def backward(ctx, u):
        x, y, table = ctx.saved_tensors
        u0, u1 = (_c(v) for v in u.unbind(1))
        need = ctx.needs_input_grad
        gx = conv(y, table, u0, u1, ctx.pairs) if need[0] else None
        gy = conv(x, table, u0, u1, ctx.pairs) if need[1] else None
        gt = scat(x, y, u0, u1, ctx.pairs, len(table)) if need[2] else None
        return gx, gy, gt, None


def conv(x, table, a, b, pairs):
    """(N, F): out[i] += x[j] w_e and out[j] += x[i] w_e over the pairs (i, j, k) with
    w_e = a_e table[k_e] + b_e table[k_e + 1]."""
    return _Conv.apply(_c(x), _c(table), _c(a), _c(b), pairs)


def scat(x, y, a, b, pairs, rows: int):
    """(rows, F): out[k_e] += a_e s_e and out[k_e + 1] += b_e s_e, s_e = x[i] y[j] + x[j] y[i]."""
    return _Scat.apply(_c(x), _c(y), _c(a), _c(b), pairs, rows)


def pdot(x, y, table, pairs):
    """(E, 2): (table[k_e] . s_e, table[k_e + 1] . s_e), s_e = x[i] y[j] + x[j] y[i]."""
    return _PDot.apply(_c(x), _c(y), _c(table), pairs)


def fused_conv(x, table, i, j, k, t):
    """agg (N, F): messages x_j w_ij into i and x_i w_ij into j over the stored pairs, with w_ij
    interpolated linearly from table (G, F) at grid index k (E,) and fraction t (E,),
    differentiable in x, table and t to any order."""
    t = t.to(x.dtype)
    return conv(x, table, 1.0 - t, t, (_c(i), _c(j), _c(k)))
