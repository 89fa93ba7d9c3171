"""An independent oracle: one full training step against PyTorch autograd + Adam.

PyTorch is optional (the `torch` extra); without it this file skips.
"""

import numpy as np
import pytest

from minae import Autoencoder
from minae.optim import Adam

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'minae[torch]')")


def _torch_step(params_np, x_np, lr, betas, eps):
    params = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params_np]
    x = torch.tensor(x_np, dtype=torch.float64)
    h = x
    for i in range(0, len(params) - 2, 2):
        h = torch.relu(h @ params[i] + params[i + 1])
    z = h @ params[-2] + params[-1]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, x)   # mean over N*D
    opt = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    opt.zero_grad()
    loss.backward()
    grads = [p.grad.detach().numpy().copy() for p in params]
    opt.step()
    return loss.item(), grads, [p.detach().numpy() for p in params]


def test_one_training_step_matches_pytorch_in_float64(rng):
    x = rng.uniform(size=(32, 20))
    model = Autoencoder(20, [16, 8, 4, 8, 16], seed=11, dtype="float64")
    for layer in model.dense:
        layer.b += 0.05 * rng.standard_normal(layer.b.shape)
    start = [p.copy() for p in model.params]
    lr, betas, eps = 0.01, (0.9, 0.99), 1e-8
    t_loss, t_grads, t_params = _torch_step(start, x, lr, betas, eps)
    loss, grads = model.loss(x)
    assert float(loss) == pytest.approx(t_loss, rel=1e-12)
    for g, tg in zip(grads, t_grads):
        np.testing.assert_allclose(g, tg, rtol=1e-10, atol=1e-16)
    Adam(lr, *betas, eps, form="textbook").step(model.params, grads)   # PyTorch's form
    for p, tp in zip(model.params, t_params):
        np.testing.assert_allclose(p, tp, rtol=1e-10)
