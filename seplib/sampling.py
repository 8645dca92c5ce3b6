"""The multi-scale Gaussian that KEF training draws its samples from."""
import torch

# The covariance scales of the reference tutorial, used by default throughout seplib.
DEFAULT_SCALES = (0.01, 0.1, 0.5, 1.0, 2.0, 4.0)


class MultiscaleGaussian:
    """Gaussians N(mean, scale * cov), one per scale, sharing a mean and a base covariance.

    ``sample(n, generator)`` returns ``Tensor[n_scales, n, d]``: ``n`` points from each scale.
    The scales multiply the covariance, so a scale s spreads the points by sqrt(s).
    """

    def __init__(self, dim, scales=DEFAULT_SCALES, mean=None, cov=None):
        self.dim = int(dim)
        if self.dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        scales = torch.as_tensor(scales, dtype=torch.float64).flatten()
        if scales.numel() == 0:
            raise ValueError("scales is empty: give at least one positive scale, e.g. [0.1, 1.0]")
        if not torch.isfinite(scales).all() or (scales <= 0).any():
            raise ValueError(f"scales must be finite and > 0, got {scales.tolist()}")
        mean = torch.zeros(self.dim, dtype=torch.float64) if mean is None else torch.as_tensor(mean, dtype=torch.float64)
        if mean.shape != (self.dim,):
            raise ValueError(f"mean has shape {tuple(mean.shape)}, expected ({self.dim},) for a {self.dim}-D field")
        cov = torch.eye(self.dim, dtype=torch.float64) if cov is None else torch.as_tensor(cov, dtype=torch.float64)
        if cov.shape != (self.dim, self.dim):
            raise ValueError(f"cov has shape {tuple(cov.shape)}, expected ({self.dim}, {self.dim})")
        if not torch.allclose(cov, cov.T):
            raise ValueError("cov is not symmetric: a covariance must equal its transpose")
        chol, info = torch.linalg.cholesky_ex(cov)
        if info != 0:
            raise ValueError("cov is not positive definite: all its eigenvalues must be > 0")
        self.scales = scales
        self.mean = mean
        self.cov = cov
        self._chol = chol

    def sample(self, n, generator=None, dtype=torch.float32, device="cpu"):
        z = torch.randn(len(self.scales), n, self.dim, generator=generator, dtype=torch.float64)
        x = self.mean + (z @ self._chol.T) * self.scales.sqrt()[:, None, None]
        return x.to(dtype=dtype, device=device)
