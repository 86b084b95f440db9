"""The compiled path (`runtime.compile`), run on the CPU so that it cannot rot while no GPU is lent:
inductor compiles the classifier's trunk and the generator as the GPU would (the CPU backend instead
of CUDA kernels and graphs), and a train step and an inversion step give the eager path's losses and
gradients. Checkpoints do not depend on it: in-task state resumes across it."""

from __future__ import annotations

import copy

import pytest
import torch

from dfcil_core.foundations import atomic_io, config
from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method import synthesis
from dfcil_core.method.learners import StepBatch, make_learner
from dfcil_core.method.models import Generator, IncrementalClassifier
from dfcil_core.method.runtime import compile_features, compile_module
from dfcil_core.method.task_inputs import TaskData
from dfcil_core.method.training import fit_task

PAST, SEEN = 2, 4
CPU = torch.device("cpu")
RTOL = 1e-9  # float64: the fused kernels reorder sums (1e-14 measured), fp32 would differ at ~1e-3


def _cfg(*extra: str) -> config.Config:
    return config.load(preset="tiny", overrides=["runtime.compile=true", *extra])


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def test_compile_is_applied_on_the_cpu_not_ignored():
    model = IncrementalClassifier("resnet32", 32, SEEN)
    compile_features(model, _cfg().runtime, CPU)
    assert model.features._compiled_call_impl is not None and model.head._compiled_call_impl is None
    eager = IncrementalClassifier("resnet32", 32, SEEN)
    assert list(model.state_dict()) == list(eager.state_dict())  # no `_orig_mod.` in any checkpoint
    compile_features(eager, _cfg("runtime.compile=false").runtime, CPU)
    assert eager.features._compiled_call_impl is None


def test_compile_on_a_cpu_without_a_cxx_compiler_is_one_line(monkeypatch):
    from torch._inductor import cpp_builder

    def none_found():
        raise RuntimeError("no compiler")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", none_found)
    with pytest.raises(DfcilError, match=r"^runtime.compile on the CPU compiles with inductor, which needs a C\+\+ "
                                         r"compiler \(g\+\+ or clang\+\+\) and found none; install one or set "
                                         r"runtime.compile=false$"):
        compile_module(Generator(16, 32), _cfg().runtime, CPU)


def test_a_compiled_abd_step_equals_the_eager_one():
    """ABD (every term: local CE, feature KD through the old heads, FT-CE, task balancing) on a
    real + synthetic batch, float64: loss, terms and every gradient of the compiled trunk's model."""
    torch.manual_seed(0)
    teacher = IncrementalClassifier("resnet32", 32, PAST, head_size=SEEN).double()
    with torch.no_grad():
        for _ in range(5):
            teacher(torch.randn(16, 3, 32, 32, dtype=torch.float64))
    teacher.eval()
    eager = copy.deepcopy(teacher)
    eager.grow(SEEN - PAST)
    eager.train()
    compiled = compile_features(copy.deepcopy(eager), _cfg().runtime, CPU)
    g = torch.Generator().manual_seed(1)
    x_syn = torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64)
    with torch.no_grad():
        t_logits, t_feats = teacher.forward_with_features(x_syn)
    batch = StepBatch(x_real=torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64),
                      y_real=torch.tensor([2, 3] * 4), past=PAST, seen=SEEN, teacher=teacher, x_syn=x_syn,
                      y_syn=t_logits[:, :PAST].argmax(1), teacher_logits_syn=t_logits[:, :PAST],
                      teacher_feats_syn=t_feats)
    results = []
    for model in (eager, compiled):
        learner = make_learner("abd", _cfg())
        learner.prepare(model, True)
        learner.terms = {}
        loss = learner.loss(model, batch)
        loss.backward()
        results.append((loss.detach(), {k: v.detach() for k, v in learner.terms.items()},
                        {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (loss_e, terms_e, grads_e), (loss_c, terms_c, grads_c) = results
    assert float(loss_c) == pytest.approx(float(loss_e), rel=RTOL)
    assert terms_c.keys() == terms_e.keys() and len(terms_e) >= 3
    for k in terms_e:
        assert float(terms_c[k]) == pytest.approx(float(terms_e[k]), rel=RTOL, abs=1e-12), k
    assert grads_c.keys() == grads_e.keys()
    for n in grads_e:
        assert _max_rel(grads_c[n], grads_e[n]) < 1e-8, n


@pytest.fixture()
def float64_default():
    """The generator draws its latents in the default dtype."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def test_a_compiled_inversion_step_equals_the_eager_one(float64_default):
    """One Adam step of the generator on Eq. 7 against a frozen teacher, float64: every term and the
    generator's weights after the step."""
    cfg = _cfg("synthesis.batch_size=8", "synthesis.z_dim=32")
    torch.manual_seed(0)
    teacher = IncrementalClassifier("resnet32", 32, PAST).double().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    start = Generator(32, 32).double()
    runs = []
    for compile_it in (False, True):
        generator = copy.deepcopy(start)
        if compile_it:
            compile_module(generator, cfg.runtime, CPU)
        opt = torch.optim.Adam(generator.parameters(), lr=cfg.synthesis.lr)
        hooks = synthesis.BNStatisticsHooks(teacher)
        generator.train()
        torch.manual_seed(7)  # the same latent draw
        try:
            terms = synthesis.inversion_step(generator, opt, teacher, hooks, PAST, cfg.synthesis,
                                             synthesis.prior_kernel(cfg.synthesis).double())
        finally:
            hooks.remove()
        grads = torch.cat([p.grad.flatten() for p in generator.parameters()])
        runs.append(({k: float(v) for k, v in terms.items()}, grads, copy.deepcopy(generator.state_dict())))
    (terms_e, grads_e, state_e), (terms_c, grads_c, state_c) = runs
    assert terms_c == pytest.approx(terms_e, rel=RTOL, abs=1e-12)
    # relative to the whole gradient: a conv bias before a BatchNorm has a gradient of 0 up to rounding
    assert _max_rel(grads_c, grads_e) < 1e-10
    assert list(state_c) == list(state_e)
    for k in state_e:  # after Adam's step (lr 1e-3): equal to far below the step
        if state_e[k].is_floating_point():
            assert float((state_c[k] - state_e[k]).abs().max()) < 1e-9, k


def _fit(cfg, resume, seed=3):
    torch.manual_seed(seed)
    model = IncrementalClassifier("resnet32", 32, SEEN)
    g = torch.Generator().manual_seed(seed)
    data = TaskData(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.randint(0, SEEN, (64,), generator=g))
    history = fit_task(model, make_learner("base", cfg), data, cfg, CPU, 0, SEEN, 2, seed, resume_path=resume)
    return model, history


def test_in_task_state_of_a_build_that_wrapped_the_trunk_resumes(tmp_path):
    """Earlier builds compiled by wrapping the trunk and wrote `features._orig_mod.*` keys into their
    in-task checkpoints: the same weights, so a resume takes them; state that fits no model is one line."""
    cfg = config.load(preset="tiny", overrides=["train.batch_size=32", "train.checkpoint_every=1"])
    resume = tmp_path / "task_1.h.partial.pt"
    whole, _ = _fit(cfg, resume)  # leaves its in-task state of the end of epoch 1 (the stage removes it)
    state = atomic_io.load_torch(resume)
    assert state["epoch"] == 1
    state["model"] = {k.replace("features.", "features._orig_mod.", 1): v for k, v in state["model"].items()}
    atomic_io.save_torch(resume, state)
    resumed, _ = _fit(cfg, resume)
    for (n, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), n
    state["model"] = {k: v for k, v in state["model"].items() if not k.startswith("head.")}
    atomic_io.save_torch(resume, state)
    with pytest.raises(DfcilError, match=r"task_1.h.partial.pt: this in-task checkpoint does not fit the model "
                                         r"\(.*\); remove it to train the task afresh$"):
        _fit(cfg, resume)


def test_teacher_forward_benchmark_compares_like_with_like():
    """The benchmark behind docs/performance.md's "compiling the teacher": its compiled and scripted
    forwards give eager's float32 logits, bfloat16 visibly does not, and every floor is (CE + forward) / CE."""
    from benchmarks.teacher_forward import measure

    out = measure(batch=4, rounds=1, steps=1, warmup=0)
    assert out["max_rel_dev"]["inductor_frozen"] < 1e-5 and out["max_rel_dev"]["torchscript_frozen"] < 1e-5
    assert out["max_rel_dev"]["eager_bf16"] > 1e-4
    ce = out["median_s"]["ce_step"]
    for name in ("eager", "inductor_frozen", "torchscript_frozen", "eager_bf16"):
        assert out["floor"][name] == pytest.approx(1 + out["median_s"][name] / ce)
