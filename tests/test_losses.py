"""GAN objectives and penalties against their formulas: each loss on known logits equals its closed form
(softplus/BCE, hinge, Wasserstein), and R1 / WGAN-GP on discriminators whose input gradient is known equal theirs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from facegen.models.losses import (
    GanLoss,
    get_loss,
    gradient_penalty,
    register_loss,
    zero_centred_penalty,
)

#: Logits from confidently fake through undecided to confidently real.
LOGITS = torch.tensor([-3.0, 0.0, 0.5, 2.0], dtype=torch.float64)
REAL = torch.tensor([2.0, 0.5], dtype=torch.float64)
FAKE = torch.tensor([-1.5, 0.25], dtype=torch.float64)
TOL = 1e-12


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_non_saturating_generator_loss_is_minus_log_sigmoid() -> None:
    expected = sum(-math.log(1 / (1 + math.exp(-x))) for x in LOGITS.tolist()) / len(LOGITS)
    assert float(get_loss("non_saturating").generator(LOGITS)) == pytest.approx(expected, abs=TOL)


def test_minimax_generator_loss_is_log_one_minus_sigmoid() -> None:
    expected = sum(math.log(1 - 1 / (1 + math.exp(-x))) for x in LOGITS.tolist()) / len(LOGITS)
    assert float(get_loss("minimax").generator(LOGITS)) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("name", ["minimax", "non_saturating"])
def test_bce_discriminator_loss_is_softplus_of_each_side(name: str) -> None:
    # −log σ(r) = softplus(−r), −log(1 − σ(f)) = softplus(f); each side is averaged over its own batch.
    expected = (_softplus(-2.0) + _softplus(-0.5)) / 2 + (_softplus(-1.5) + _softplus(0.25)) / 2
    assert float(get_loss(name).discriminator(REAL, FAKE)) == pytest.approx(expected, abs=TOL)
    at_zero = get_loss(name).discriminator(torch.zeros(3), torch.zeros(5))
    assert float(at_zero) == pytest.approx(2 * math.log(2), abs=1e-7)  # D undecided: log 2 per side


def test_hinge_values() -> None:
    hinge = get_loss("hinge")
    # max(0, 1 − r): 0 for r = 2, 0.5 for r = 0.5; max(0, 1 + f): 0 for f = −1.5, 1.25 for f = 0.25.
    assert float(hinge.discriminator(REAL, FAKE)) == pytest.approx(0.25 + 0.625, abs=TOL)
    assert float(hinge.generator(FAKE)) == pytest.approx(0.625, abs=TOL)  # −mean(f)
    assert not hinge.needs_gradient_penalty


def test_wasserstein_values_and_penalty_flag() -> None:
    wgan = get_loss("wgan_gp")
    assert float(wgan.discriminator(REAL, FAKE)) == pytest.approx(-0.625 - 1.25, abs=TOL)  # mean(f) − mean(r)
    assert float(wgan.generator(FAKE)) == pytest.approx(0.625, abs=TOL)
    assert wgan.needs_gradient_penalty


def _linear_discriminator(weight: torch.Tensor):
    """D(x) = ⟨w, x⟩ + 3 per image: its input gradient is w everywhere."""
    return lambda images: (images * weight).sum(dim=[1, 2, 3]) + 3.0


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm() -> None:
    weight = torch.arange(12, dtype=torch.float64).reshape(3, 2, 2) / 10
    images = torch.randn(5, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    images.requires_grad_(True)
    penalty = zero_centred_penalty(_linear_discriminator(weight)(images), images)
    assert float(penalty.detach()) == pytest.approx(float(weight.square().sum()), abs=TOL)  # ‖∇D‖² = ‖w‖²


def test_r1_penalty_of_a_quadratic_discriminator() -> None:
    # D(x) = ½‖x‖²: ∇D = x, so the penalty is the mean of ‖x‖² over the batch.
    images = torch.tensor([[[[1.0, 2.0]]], [[[0.0, 3.0]]]], dtype=torch.float64, requires_grad=True)
    penalty = zero_centred_penalty(0.5 * images.square().sum(dim=[1, 2, 3]), images)
    assert float(penalty.detach()) == pytest.approx((5.0 + 9.0) / 2, abs=TOL)
    (grad,) = torch.autograd.grad(penalty, images)  # create_graph: the penalty itself trains D
    assert torch.allclose(grad, images.detach(), atol=TOL)  # ∂/∂x of mean ‖x‖² over 2 images = 2x / 2


@pytest.mark.parametrize(("norm", "expected"), [(1.0, 0.0), (3.0, 4.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic_is_its_norm_gap_squared(norm: float, expected: float) -> None:
    weight = torch.zeros(1, 2, 2, dtype=torch.float64)
    weight[0, 0, 0] = norm  # ‖∇D‖ = norm at every interpolate, wherever the random mix lands
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 2, 2, dtype=torch.float64), torch.randn(4, 1, 2, 2, dtype=torch.float64)
    penalty = gradient_penalty(_linear_discriminator(weight), real, fake)
    assert float(penalty.detach()) == pytest.approx(expected, abs=TOL)  # (‖w‖ − 1)²


def test_gradient_penalty_is_taken_at_interpolates_between_real_and_fake() -> None:
    # D(x) = ½‖x‖² has ∇D = x: with real = fake = c every interpolate is c, so the penalty is (‖c‖ − 1)².
    c = torch.full((3, 1, 1, 4), 1.5, dtype=torch.float64)
    penalty = gradient_penalty(lambda x: 0.5 * x.square().sum(dim=[1, 2, 3]), c, c.clone())
    assert float(penalty.detach()) == pytest.approx((3.0 - 1.0) ** 2, abs=TOL)  # ‖c‖ = 1.5 · √4 = 3


def test_losses_are_chosen_by_name_and_a_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'hingee'; registered: \['hinge', "):
        get_loss("hingee")
    with pytest.raises(ValueError, match="already registered"):
        register_loss("hinge", GanLoss(F.softplus, F.softplus))
