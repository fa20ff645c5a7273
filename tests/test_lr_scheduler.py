"""optim.lr_scheduler: every scheduler's lr sequence against its documented closed form and
against torch.optim.lr_scheduler; state_dict resume and all-or-nothing loading."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

import autotensor as at
from autotensor import optim
from autotensor.optim import lr_scheduler

LRS = (0.1, 0.04)                    # two param groups with their own lr


def ours(name="SGD", **kwargs):
    params = [at.Tensor(np.zeros(2), requires_grad=True) for _ in LRS]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, LRS)]
    return getattr(optim, name)(groups, **kwargs)


def theirs(torch, name="SGD", **kwargs):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in LRS]
    return getattr(torch.optim, name)(groups, **kwargs)


def momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def sequence(opt, make, steps, metrics=None):
    """[(lrs, momenta)] at construction and after each of `steps` steps."""
    sched = make(opt)
    out = [(sched.get_last_lr(), momenta(opt))]
    for i in range(steps):
        opt.step()                        # no gradients: the usual order, nothing updated
        sched.step(metrics[i]) if metrics is not None else sched.step()
        out.append((sched.get_last_lr(), momenta(opt)))
    return out


def assert_sequences_equal(got, expected, rtol=1e-10):
    assert len(got) == len(expected)
    for step, ((lr, m), (lr_e, m_e)) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(lr, lr_e, rtol=rtol, atol=1e-15, err_msg=f"lr, step {step}")
        if m_e[0] is not None:
            np.testing.assert_allclose(m, m_e, rtol=rtol, err_msg=f"momentum, step {step}")


def one_cycle_expected(total, pct, max_lr, three_phase=False, cos=True, div=25.0,
                       final_div=1e4, m_lo=0.85, m_hi=0.95):
    """OneCycleLR's lr and momentum at steps 0..total, written from its documentation."""
    lo, end = max_lr / div, max_lr / div / final_div
    if three_phase:
        ends, lrs, ms = [pct * total - 1, 2 * pct * total - 2, total - 1], \
            [lo, max_lr, lo, end], [m_hi, m_lo, m_hi, m_hi]
    else:
        ends, lrs, ms = [pct * total - 1, total - 1], [lo, max_lr, end], [m_hi, m_lo, m_hi]

    def anneal(a, b, f):
        return b + (a - b) * (1 + math.cos(math.pi * f)) / 2 if cos else a + (b - a) * f

    out = []
    for step in range(total + 1):
        i = next((k for k, e in enumerate(ends) if step <= e), len(ends) - 1)
        start = ends[i - 1] if i else 0.0
        f = (step - start) / (ends[i] - start)
        out.append((anneal(lrs[i], lrs[i + 1], f), anneal(ms[i], ms[i + 1], f)))
    return out


# (id, our factory, torch's factory, steps, metrics): the same arguments on both sides.
PLATEAU_LOSSES = [1.0, 0.9, 0.95, 0.92, 0.91, 0.905, 0.93, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7,
                  float("nan"), 0.6, 0.61, 0.62, 0.63, 0.64, 0.65, 0.66, 0.67, 0.68, 0.69]
CASES = [
    ("step", lambda L: (lambda o: L.StepLR(o, step_size=3, gamma=0.5)), 12, None),
    ("multistep", lambda L: (lambda o: L.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3)), 12,
     None),
    ("exponential", lambda L: (lambda o: L.ExponentialLR(o, gamma=0.9)), 10, None),
    ("cosine", lambda L: (lambda o: L.CosineAnnealingLR(o, T_max=8, eta_min=0.01)), 8, None),
    ("lambda", lambda L: (lambda o: L.LambdaLR(o, lambda e: 1 / (1 + e))), 8, None),
    ("lambda-per-group", lambda L: (lambda o: L.LambdaLR(
        o, [lambda e: 0.9 ** e, lambda e: min(1.0, (e + 1) / 4)])), 8, None),
    ("linear-warmup", lambda L: (lambda o: L.LinearLR(o, start_factor=0.25, total_iters=4)), 8,
     None),
    ("linear-decay", lambda L: (lambda o: L.LinearLR(o, 1.0, 0.1, total_iters=5)), 8, None),
    ("linear-default", lambda L: (lambda o: L.LinearLR(o)), 8, None),
    ("onecycle", lambda L: (lambda o: L.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=20)), 20,
     None),
    ("onecycle-linear-3phase", lambda L: (lambda o: L.OneCycleLR(
        o, max_lr=0.8, epochs=4, steps_per_epoch=6, pct_start=0.25, anneal_strategy="linear",
        three_phase=True, base_momentum=0.8, max_momentum=0.9, div_factor=10.0,
        final_div_factor=100.0)), 24, None),
    ("plateau-min-rel", lambda L: (lambda o: L.ReduceLROnPlateau(o, patience=2)), 25,
     PLATEAU_LOSSES),
    ("plateau-max-abs-cooldown", lambda L: (lambda o: L.ReduceLROnPlateau(
        o, mode="max", factor=0.5, patience=1, threshold=0.01, threshold_mode="abs",
        cooldown=2, min_lr=[0.02, 0.0], eps=1e-3)), 25, [-x for x in PLATEAU_LOSSES]),
    ("sequential-warmup-decay", lambda L: (lambda o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=3), L.ExponentialLR(o, gamma=0.8)],
        milestones=[3])), 10, None),
    ("sequential-three", lambda L: (lambda o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.5, total_iters=2), L.StepLR(o, 2, gamma=0.5),
            L.CosineAnnealingLR(o, T_max=4)], milestones=[2, 6])), 10, None),
]


@pytest.mark.parametrize("make, steps, metrics", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_lr_and_momentum_sequences_equal_torch(torch, make, steps, metrics, optimizer):
    kwargs = {"momentum": 0.9} if optimizer == "SGD" else {}
    got = sequence(ours(optimizer, **kwargs), make(lr_scheduler), steps, metrics)
    expected = sequence(theirs(torch, optimizer, **kwargs), make(torch.optim.lr_scheduler),
                        steps, metrics)
    assert_sequences_equal(got, expected)


# ---- the documented formulas, without torch ----------------------------------------------------
def lrs_of(opt, make, steps, metrics=None):
    return [lr for lr, _ in sequence(opt, make, steps, metrics)]


@pytest.mark.parametrize("make, formula", [
    (lambda o: lr_scheduler.StepLR(o, 3, gamma=0.5), lambda b, e: b * 0.5 ** (e // 3)),
    (lambda o: lr_scheduler.MultiStepLR(o, [2, 5], gamma=0.3),
     lambda b, e: b * 0.3 ** ((e >= 2) + (e >= 5))),
    (lambda o: lr_scheduler.ExponentialLR(o, 0.9), lambda b, e: b * 0.9 ** e),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, 6, eta_min=0.01),
     lambda b, e: 0.01 + (b - 0.01) * (1 + math.cos(math.pi * min(e, 6) / 6)) / 2),
    (lambda o: lr_scheduler.LambdaLR(o, lambda e: 2.0 ** -e), lambda b, e: b * 2.0 ** -e),
    (lambda o: lr_scheduler.LinearLR(o, 0.2, 0.8, total_iters=4),
     lambda b, e: b * (0.2 + 0.6 * min(e, 4) / 4)),
], ids=["step", "multistep", "exponential", "cosine", "lambda", "linear"])
def test_closed_forms(make, formula):
    got = lrs_of(ours(), make, 10)
    for e, lrs in enumerate(got):
        assert lrs == pytest.approx([formula(b, e) for b in LRS], rel=1e-14), e


@pytest.mark.parametrize("kwargs, expected_kwargs", [
    ({"max_lr": 1.0, "total_steps": 20}, {"total": 20, "pct": 0.3, "max_lr": 1.0}),
    ({"max_lr": 0.8, "total_steps": 24, "pct_start": 0.25, "anneal_strategy": "linear",
      "three_phase": True},
     {"total": 24, "pct": 0.25, "max_lr": 0.8, "three_phase": True, "cos": False}),
])
def test_one_cycle_follows_its_documented_phases(kwargs, expected_kwargs):
    opt = ours("SGD", momentum=0.9)
    got = sequence(opt, lambda o: lr_scheduler.OneCycleLR(o, **kwargs), kwargs["total_steps"])
    for step, ((lrs, ms), (lr, m)) in enumerate(zip(got, one_cycle_expected(**expected_kwargs))):
        assert lrs == pytest.approx([lr, lr], rel=1e-13), step
        assert ms == pytest.approx([m, m], rel=1e-13), step
    assert got[0][0][0] == pytest.approx(kwargs["max_lr"] / 25)         # initial_lr


def test_one_cycle_cycles_adams_beta1_and_stops_after_total_steps():
    opt = ours("Adam", betas=(0.9, 0.99))
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)
    assert opt.param_groups[0]["betas"] == (0.95, 0.99)          # max_momentum at step 0
    for _ in range(10):
        sched.step()
    hyper = lambda: {k: v for k, v in opt.param_groups[0].items() if k != "params"}  # noqa: E731
    before = (sched.state_dict(), hyper())
    with pytest.raises(ValueError, match="past total_steps=10"):
        sched.step()
    assert (sched.state_dict(), hyper()) == before
    with pytest.raises(ValueError, match="Adagrad; pass cycle_momentum=False"):
        lr_scheduler.OneCycleLR(ours("Adagrad"), max_lr=0.1, total_steps=5)
    lr_scheduler.OneCycleLR(ours("Adagrad"), max_lr=0.1, total_steps=5, cycle_momentum=False)


def test_one_cycle_phase_of_length_zero_counts_as_done():
    """pct_start * total_steps == 1: the warm-up is over at once (PyTorch divides by zero)."""
    got = lrs_of(ours(), lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10,
                                                           pct_start=0.1), 3)
    assert got[0] == [1.0, 1.0] and got[1][0] < 1.0


def test_torch_one_cycle_divides_by_zero_there(torch):
    with pytest.raises(ZeroDivisionError):
        torch.optim.lr_scheduler.OneCycleLR(theirs(torch), max_lr=1.0, total_steps=10,
                                            pct_start=0.1)


def test_reduce_on_plateau_waits_patience_then_reduces_then_cools_down():
    opt = ours()
    sched = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=1,
                                           min_lr=0.015)
    got = [sched.step(loss) or sched.get_last_lr()[0]
           for loss in [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5]]
    # 2 bad epochs > patience: halve; the cooldown epoch counts none; the floor is min_lr
    assert got == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.015])
    assert sched.get_last_lr()[1] == pytest.approx(0.015)
    sched.step(at.Tensor(0.1))                                    # a 0-d Tensor metric
    assert sched.best == pytest.approx(0.1)
    with pytest.raises(ValueError, match='metrics must be a finite number, got the string "0.1"'):
        sched.step("0.1")


def test_cosine_holds_eta_min_after_t_max_where_torch_rises(torch):
    """The documented difference: PyTorch's recursive form rises again after T_max."""
    got = lrs_of(ours(), lambda o: lr_scheduler.CosineAnnealingLR(o, 4, eta_min=0.01), 8)
    expected = lrs_of(theirs(torch), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(
        o, 4, eta_min=0.01), 8)
    np.testing.assert_allclose(got[:5], expected[:5], rtol=1e-10)
    assert all(lrs == pytest.approx([0.01, 0.01]) for lrs in got[4:])
    assert expected[6][0] > 0.02


def test_sequential_parts_start_from_the_initial_lr():
    """A warm-up changes the lr at construction; the decay built after it still starts at the
    optimizer's initial lr (PyTorch's group['initial_lr'])."""
    opt = ours()
    warmup = lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=2)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    decay = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    assert decay.base_lrs == list(LRS) and opt.param_groups[0]["initial_lr"] == 0.1
    sched = lr_scheduler.SequentialLR(opt, [warmup, decay], milestones=[2])
    got = [lrs[0] for lrs in lrs_of(opt, lambda o: sched, 4)]
    assert got == pytest.approx([0.01, 0.055, 0.1, 0.05, 0.025])
    assert (warmup.last_epoch, decay.last_epoch) == (1, 2)       # each counts its own epochs


def test_schedules_is_an_alias_of_lr_scheduler():
    from autotensor.optim import schedules

    for name in ("LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR"):
        assert getattr(schedules, name) is getattr(lr_scheduler, name) is getattr(optim, name)
    for name in lr_scheduler.__all__:
        assert getattr(optim, name) is getattr(lr_scheduler, name)


# ---- state_dict --------------------------------------------------------------------------------
STATEFUL = [c for c in CASES if not c[0].startswith("linear-default")]


@pytest.mark.parametrize("make, steps, metrics", [c[1:] for c in STATEFUL],
                         ids=[c[0] for c in STATEFUL])
def test_state_dict_resumes_exactly(make, steps, metrics):
    half = steps // 2
    opt, opt2 = ours("SGD", momentum=0.9), ours("SGD", momentum=0.9)
    sched, sched2 = make(lr_scheduler)(opt), make(lr_scheduler)(opt2)
    for i in range(half):
        sched.step(metrics[i]) if metrics else sched.step()
    saved = copy.deepcopy(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(saved)
    for i in range(half, steps):
        for s in (sched, sched2):
            s.step(metrics[i]) if metrics else s.step()
        assert sched2.get_last_lr() == sched.get_last_lr()
        assert momenta(opt2) == momenta(opt)
    assert set(saved) <= set(type(sched)._checks), "every saved entry has a check"


def stepped(make, steps=3):
    opt = ours("SGD", momentum=0.9)
    sched = make(opt)
    for _ in range(steps):
        sched.step(1.0) if isinstance(sched, lr_scheduler.ReduceLROnPlateau) else sched.step()
    return opt, sched


def _edit(**changes):
    return lambda s: {**s, **changes}


ONE_CYCLE = CASES[9][1](lr_scheduler)
PLATEAU = CASES[12][1](lr_scheduler)
SEQUENTIAL = CASES[13][1](lr_scheduler)
BAD_STATES = [     # (id, scheduler, edit of its state_dict, a fragment of the message)
    ("multistep-milestones-order", CASES[1][1](lr_scheduler), _edit(milestones=[5, 2]),
     "'milestones' must be increasing"),
    ("multistep-milestone-zero", CASES[1][1](lr_scheduler), _edit(milestones=[0, 3]),
     "'milestones'[0] must be an integer >= 1"),
    ("linear-start-zero", CASES[6][1](lr_scheduler), _edit(start_factor=0.0),
     "'start_factor' must be a finite number in (0, 1]"),
    ("linear-total-float", CASES[6][1](lr_scheduler), _edit(total_iters=2.0),
     "'total_iters' must be an integer"),
    ("lambda-unknown", CASES[4][1](lr_scheduler), _edit(lr_lambdas=[None, None]),
     "unknown keys ['lr_lambdas']"),
    ("onecycle-strategy", ONE_CYCLE, _edit(anneal_strategy="cosine"),
     "'anneal_strategy' must be one of \"cos\", \"linear\""),
    ("onecycle-max-lrs-length", ONE_CYCLE, _edit(max_lrs=[1.0]), "one number per param group"),
    ("onecycle-momentum", ONE_CYCLE, _edit(max_momentums=[0.95, 1.5]),
     "'max_momentums'[1] must be a finite number in [0, 1)"),
    ("onecycle-flag", ONE_CYCLE, _edit(three_phase=1), "'three_phase' must be True or False"),
    ("onecycle-late-bad", ONE_CYCLE, _edit(last_epoch=5, total_steps=0),
     "'total_steps' must be an integer >= 1"),
    ("plateau-best-nan", PLATEAU, _edit(best=float("nan")), "'best' must be a finite number"),
    ("plateau-mode", PLATEAU, _edit(mode="minimum"), "'mode' must be one of"),
    ("plateau-patience", PLATEAU, _edit(patience=-1), "'patience' must be an integer >= 0"),
    ("plateau-min-lrs", PLATEAU, _edit(min_lrs=[0.0]), "one min_lr per param group"),
    ("sequential-parts-count", SEQUENTIAL, lambda s: {**s, "schedulers": s["schedulers"][:1]},
     "must list 2 state_dicts"),
    ("sequential-second-part-bad", SEQUENTIAL,
     lambda s: {**s, "last_epoch": 7, "schedulers": [
         {**s["schedulers"][0], "last_epoch": 1}, {**s["schedulers"][1], "gamma": -1.0}]},
     "ExponentialLR state_dict: 'gamma' must be a finite number > 0"),
]


@pytest.mark.parametrize("make, edit, match", [r[1:] for r in BAD_STATES],
                         ids=[r[0] for r in BAD_STATES])
def test_bad_state_dict_changes_nothing(make, edit, match):
    opt, sched = stepped(make)
    bad = edit(copy.deepcopy(sched.state_dict()))
    parts = getattr(sched, "schedulers", [])
    before = copy.deepcopy((sched.state_dict(), [vars(p).copy() for p in parts],
                            opt.param_groups[0]["lr"]))
    with pytest.raises(ValueError, match=re.escape(match)):
        sched.load_state_dict(bad)
    after = (sched.state_dict(), [vars(p).copy() for p in parts], opt.param_groups[0]["lr"])
    assert repr(after) == repr(before)


def test_lambda_state_dict_leaves_the_functions_out():
    opt = ours()
    sched = lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** e)
    sched.step()
    assert set(sched.state_dict()) == {"base_lrs", "last_epoch"}


def test_lambda_result_is_checked():
    with pytest.raises(ValueError, match=r"LambdaLR: lr_lambda\[0\]\(0\) must be a finite number"):
        lr_scheduler.LambdaLR(ours(), lambda e: float("nan"))
    sched = lr_scheduler.LambdaLR(ours(), lambda e: 1.0 - e)
    sched.step()
    with pytest.raises(ValueError, match=r"lr_lambda\[0\]\(2\) must be a finite number >= 0"):
        sched.step()
    assert sched.last_epoch == 1 and sched.get_last_lr() == [0.0, 0.0]
