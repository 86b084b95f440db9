"""Hand-computed values for every loss (numbers worked out on paper in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from dfcil_core.method import losses

LN2, LN3 = math.log(2), math.log(3)


def test_balancing_weights():
    # past / seen = 1/4: past classes 0.25, new classes 0.75
    assert losses.balancing_weights(1, 4).tolist() == [0.25, 0.75, 0.75, 0.75]
    assert losses.balancing_weights(2, 4).tolist() == [0.5, 0.5, 0.5, 0.5]
    assert losses.balancing_weights(2, 4, enabled=False).tolist() == [1.0] * 4
    assert losses.balancing_weights(0, 3).tolist() == [1.0] * 3  # task 1: plain CE


def test_weighted_ce():
    # CE of [0, 0] against class 0 is ln 2; weight 2 doubles it; the batch mean of (2 ln2, ln2)
    logits = torch.zeros(2, 2)
    assert losses.weighted_ce(logits, torch.tensor([0, 1]), torch.tensor([2.0, 1.0])).item() == pytest.approx(1.5 * LN2)


def test_softmax_kd_zero_padded():
    # teacher (2 past classes) uniform -> p = [.5, .5, 0]; student uniform over 3 -> q = 1/3
    # cross-entropy -sum p log q = 2 * 0.5 * ln 3 = ln 3 (the authors' form; KL would be ln 1.5)
    kd = losses.softmax_kd(torch.zeros(1, 3), torch.zeros(1, 2), temperature=2.0, pad_to_student=True)
    assert kd.item() == pytest.approx(LN3, abs=1e-6)


def test_softmax_kd_temperature_and_unpadded():
    # teacher logits [2 ln3, 0] / T=2 -> softmax [ln3, 0] = [.75, .25]; student [0, 0] (past only) -> [.5, .5]
    # cross-entropy = -(.75 ln .5 + .25 ln .5) = ln 2; the student's third logit is ignored
    kd = losses.softmax_kd(torch.tensor([[0.0, 0.0, 9.0]]), torch.tensor([[2 * LN3, 0.0]]), 2.0, pad_to_student=False)
    assert kd.item() == pytest.approx(LN2, abs=1e-6)
    # identical distributions -> the teacher's entropy (the KL part is 0): ln 2 for two equal logits
    same = losses.softmax_kd(torch.zeros(1, 3), torch.zeros(1, 2), 2.0, pad_to_student=False)
    assert same.item() == pytest.approx(LN2, abs=1e-7)
    # batch mean, no T^2 factor: both rows have cross-entropy ln 2
    two = losses.softmax_kd(torch.zeros(2, 2), torch.tensor([[2 * LN3, 0.0], [0.0, 0.0]]), 2.0, pad_to_student=False)
    assert two.item() == pytest.approx(LN2, abs=1e-6)


def test_lwf_mc_loss():
    # logits [ln3, 0]; targets: past class <- sigmoid(teacher 0) = .5, new class y=1 -> 1
    # entry 0: -(.5 ln .75 + .5 ln .25) = 0.836988; entry 1: ln 2; summed over classes (one row)
    loss = losses.lwf_mc_loss(torch.tensor([[LN3, 0.0]]), torch.tensor([1]), past=1, teacher_logits=torch.zeros(1, 1))
    expected = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25)) + LN2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # averaged over the batch: the same row twice gives the same value; one more class adds its BCE
    twice = losses.lwf_mc_loss(torch.tensor([[LN3, 0.0]] * 2), torch.tensor([1, 1]), past=1,
                               teacher_logits=torch.zeros(2, 1))
    assert twice.item() == pytest.approx(expected, abs=1e-6)
    wider = losses.lwf_mc_loss(torch.tensor([[LN3, 0.0, 0.0]]), torch.tensor([1]), past=1,
                               teacher_logits=torch.zeros(1, 1))
    assert wider.item() == pytest.approx(expected + LN2, abs=1e-6)  # target 0 at logit 0: ln 2


@pytest.mark.parametrize("saturating,loss,grad", [
    # float32 logits [20, -30, 0], class 1 true. On the sigmoid's outputs (the authors' BCELoss):
    # sigmoid(20) rounds to 1 -> log clamped at -100 -> term 100 and no gradient; sigmoid(-30) =
    # 9.36e-14 -> term 30, and p(1-p) < 1e-12 clamps the denominator: gradient -p(1-p)/1e-12 = -0.0936.
    (True, 100 + 30 + LN2, [0.0, -0.0935762, 0.5]),
    (False, 20 + 30 + LN2, [1.0, -1.0, 0.5]),  # on the logits: (p - y), never vanishing
])
def test_lwf_mc_loss_saturating_as_the_authors_or_stable(saturating, loss, grad):
    x = torch.tensor([[20.0, -30.0, 0.0]], requires_grad=True)
    value = losses.lwf_mc_loss(x, torch.tensor([1]), past=0, teacher_logits=None, saturating=saturating)
    value.backward()
    assert value.item() == pytest.approx(loss, rel=1e-6)
    assert x.grad[0].tolist() == pytest.approx(grad, rel=1e-5, abs=1e-7)


def test_local_ce_uses_new_heads_only():
    # past = 1, seen = 3; the huge past logit is ignored; CE over [0, 0] = ln2, weight of a new
    # class = 1 - 1/3
    w = losses.balancing_weights(1, 3)
    loss = losses.local_ce(torch.tensor([[50.0, 0.0, 0.0]]), torch.tensor([1]), past=1, class_weights=w)
    assert loss.item() == pytest.approx(LN2 * 2 / 3, abs=1e-6)


def test_importance_weighted_feature_kd():
    # W (f_s - f_t) = [[1,2],[3,4]] @ [1, 0] = [1, 3]; squared sum 10; batch mean 10; / 2 classes = 5
    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    kd = losses.importance_weighted_feature_kd(torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2), w)
    assert kd.item() == pytest.approx(5.0)
    # two samples, second identical to teacher: (10 + 0) / 2 / 2 = 2.5
    kd = losses.importance_weighted_feature_kd(torch.tensor([[1.0, 0.0], [0.5, 0.5]]),
                                               torch.tensor([[0.0, 0.0], [0.5, 0.5]]), w)
    assert kd.item() == pytest.approx(2.5)


def test_ft_ce_value():
    head = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.zero_()
    w = losses.balancing_weights(1, 3)  # [1/3, 2/3, 2/3]
    # all logits 0 -> CE over 3 classes is ln 3; samples of class 0 and 2 -> mean(ln3/3, 2 ln3/3) = ln3/2
    loss = losses.ft_ce(head, torch.ones(2, 2), torch.tensor([0, 2]), seen=3, class_weights=w)
    assert loss.item() == pytest.approx(LN3 / 2, abs=1e-6)


def test_content_loss():
    # CE([2, 0], argmax 0) = ln(1 + e^-2); at temperature 2 -> ln(1 + e^-1)
    assert losses.content_loss(torch.tensor([[2.0, 0.0]]), 1.0).item() == pytest.approx(math.log1p(math.exp(-2)), abs=1e-6)
    assert losses.content_loss(torch.tensor([[2.0, 0.0]]), 2.0).item() == pytest.approx(math.log1p(math.exp(-1)), abs=1e-6)


def test_diversity_loss():
    # balanced predictions -> 0; one class always -> 1; pbar = [.75, .25] -> 1 - H2(.75) = 0.188722
    assert losses.diversity_loss(torch.tensor([[100.0, 0.0], [0.0, 100.0]])).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.diversity_loss(torch.tensor([[100.0, 0.0], [100.0, 0.0]])).item() == pytest.approx(1.0, abs=1e-6)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / LN2
    assert losses.diversity_loss(torch.tensor([[LN3, 0.0]])).item() == pytest.approx(1 - h, abs=1e-6)



def test_diversity_loss_stays_finite_where_a_class_softmax_underflows():
    # logits 900 apart: pbar = [1, 0] exactly in float32/64; the reference's 0 * log 0 is NaN
    logits = torch.tensor([[900.0, 0.0, 0.0], [900.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = losses.diversity_loss(logits)
    loss.backward()
    # pbar = [1, 2e-391 -> 0, 0]: only the first class contributes, 1 * log 1 = 0 -> the term is 1
    assert loss.item() == pytest.approx(1.0, abs=1e-12)
    assert torch.isfinite(logits.grad).all()

def test_bn_stat_kl():
    one, zero = torch.ones(1), torch.zeros(1)
    assert losses.bn_stat_kl_per_channel(zero, one, zero, one).item() == pytest.approx(0.0, abs=1e-7)
    # KL(N(1, 1) || N(0, 4)) = ln 2 + (1 + 1) / 8 - 1/2 = 0.443147
    kl = losses.bn_stat_kl_per_channel(zero, 4 * one, one, one)
    assert kl.item() == pytest.approx(LN2 - 0.25, abs=1e-6)
    # per channel: (0.443147, 0); Eq. 5 averages them over the layer's channels
    kl2 = losses.bn_stat_kl_per_channel(torch.tensor([0.0, 0.0]), torch.tensor([4.0, 1.0]), torch.tensor([1.0, 0.0]),
                                        torch.ones(2))
    assert kl2.tolist() == pytest.approx([LN2 - 0.25, 0.0], abs=1e-6)


# 1-D Gaussian, sigma 1, 5 taps: exp(-d^2 / 2) for d = -2..2, normalised
_G = [math.exp(-4 / 2), math.exp(-1 / 2), 1.0, math.exp(-1 / 2), math.exp(-4 / 2)]
_G = [g / sum(_G) for g in _G]


def test_gaussian_kernel():
    k = losses.gaussian_kernel(5, 1.0)
    assert k.shape == (5, 5)
    assert k.sum().item() == pytest.approx(1.0)
    assert k[2, 2].item() == pytest.approx(_G[2] ** 2, abs=1e-6)  # 0.402620^2 = 0.162103
    assert k[0, 2].item() == pytest.approx(_G[0] * _G[2], abs=1e-6)


def test_smoothness_prior():
    k = losses.gaussian_kernel(5, 1.0)
    assert losses.smoothness_prior(torch.full((1, 3, 8, 8), 0.7), k).item() == pytest.approx(0.0, abs=1e-10)
    # impulse at the centre of a 9x9 image (reflections never reach it): the blur is the kernel
    # itself, so sum (x - blur)^2 = (1 - k_c)^2 + sum_{others} k^2 = 1 - 2 k_c + sum k^2
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    kc = _G[2] ** 2
    sum_k2 = sum(g * g for g in _G) ** 2
    expected = (1 - 2 * kc + sum_k2) / 81
    assert losses.smoothness_prior(x, k).item() == pytest.approx(expected, abs=1e-7)
