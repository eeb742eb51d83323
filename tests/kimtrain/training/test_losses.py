"""The Tukey biweight used for augmented labels: MSE-like for small residuals, capped for outliers."""
import torch

from kimtrain.training.losses import TUKEY_C, tukey_biweight


def test_tukey_matches_mse_for_small_residuals_and_caps_outliers():
    torch.manual_seed(0)
    r = 0.05 * torch.randn(1000, dtype=torch.float64)
    scale = 1.4826 * r.abs().median()
    inner = tukey_biweight(r)  # Gaussian residuals: nearly all well inside c * s
    assert 0.8 * (r ** 2).mean() < inner <= (r ** 2).mean()
    big = torch.cat([r, torch.full((10,), 100.0, dtype=torch.float64)])
    cap = 2 * scale ** 2 * TUKEY_C ** 2 / 6
    with_outliers = tukey_biweight(big)
    assert with_outliers < (r ** 2).mean() + 10 / len(big) * cap * 1.01  # each outlier adds at most the cap
    assert ((big ** 2).mean() / with_outliers) > 1000                    # where MSE would explode
