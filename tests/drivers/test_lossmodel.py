"""Bursty loss: the measured loss rate and loss-burst lengths of 100,000 frames through a
FaultInjector match the model's analytic values, within tolerances derived from the statistics
(seeded, so each test is one fixed draw; the tolerances say how unlikely a failure would be
with another seed)."""

import math
import random

import pytest

from ustack.drivers import FaultConfig, FaultInjector, LossModel, MemLink, make_model
from ustack.drivers.lossmodel import LossState

N = 100_000
Z = 4.5  # standard deviations: a correct model fails with another seed about once in 150,000


def bursts(lost: list[bool]) -> list[int]:
    """Lengths of the runs of lost frames that begin after a delivered frame and end before one."""
    out, run, started = [], 0, False
    for x in lost:
        if x:
            run += 1
        else:
            if run and started:
                out.append(run)
            run = 0
            started = True
    return out


def through_injector(model: LossModel, seed: int) -> list[bool]:
    """Send N numbered frames through an rx-side injector; True where frame i was lost."""
    a, b = MemLink.pair(queue_limit=N)
    fi = FaultInjector(b, config=FaultConfig(seed=seed, loss_model=model, direction="rx"))
    got = set()
    for start in range(0, N, 5000):
        for i in range(start, start + 5000):
            a.send(i.to_bytes(4, "big"), 0.0)
        got.update(int.from_bytes(f, "big") for f in fi.recv_batch(0.0, 10_000))
    assert fi.stats["dropped"] == N - len(got)
    return [i not in got for i in range(N)]


def chi2_critical(df: int, z: float = Z) -> float:
    """Upper quantile of chi-square with df degrees of freedom at the normal quantile z
    (Wilson-Hilferty)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


MODELS = [
    make_model("simple-gilbert", 0.01, 0.3),
    make_model("gilbert", 0.02, 0.25, 0.8),
    make_model("gilbert-elliott", 0.01, 0.3, 0.9, 0.002),
    make_model("bernoulli", 0.05),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.model)
def test_loss_rate_and_burst_lengths_match_the_model(model: LossModel) -> None:
    lost = through_injector(model, seed=11)
    rate = sum(lost) / N
    sd = math.sqrt(model.loss_rate_variance(N))
    assert abs(rate - model.loss_rate()) <= Z * sd, (rate, model.loss_rate(), sd)

    runs = bursts(lost)
    n_b = len(runs)
    assert n_b > 300
    # Mean burst length: bursts are independent (each starts from the state a loss leaves),
    # so the standard error is the pmf's standard deviation over sqrt(number of bursts).
    pmf = model.burst_pmf(200)
    mean = sum((k + 1) * p for k, p in enumerate(pmf))
    assert mean == pytest.approx(model.mean_burst(), rel=1e-6)
    var = sum((k + 1 - mean) ** 2 * p for k, p in enumerate(pmf))
    assert abs(sum(runs) / n_b - mean) <= Z * math.sqrt(var / n_b) + 1e-9

    # The whole distribution: chi-square over lengths 1..K and a tail bin, K chosen so each
    # bin expects at least 5 bursts.
    k = 1
    while k < 60 and n_b * pmf[k] >= 5 and n_b * (1 - sum(pmf[:k + 1])) >= 5:
        k += 1
    expected = [n_b * p for p in pmf[:k]] + [n_b * (1 - sum(pmf[:k]))]
    observed = [sum(1 for r in runs if r == i + 1) for i in range(k)] + [sum(1 for r in runs if r > k)]
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)
    assert stat <= chi2_critical(len(expected) - 1), (stat, observed, [round(e) for e in expected])


def test_simple_gilbert_bursts_are_geometric() -> None:
    """Every frame in the bad state is lost: a burst is one stay in it, P(L = n) = (1-r)^(n-1) r."""
    m = make_model("simple-gilbert", 0.05, 0.4)
    assert m.burst_pmf(5) == pytest.approx([0.6 ** (n - 1) * 0.4 for n in range(1, 6)])
    assert m.loss_rate() == pytest.approx(0.05 / 0.45)
    assert m.mean_burst() == pytest.approx(1 / 0.4)


def test_a_wrong_model_is_caught() -> None:
    """The test above can fail: a Bernoulli loss at the same mean rate has far shorter bursts."""
    ge = make_model("simple-gilbert", 0.01, 0.3)
    lost = through_injector(LossModel("bernoulli", ge.loss_rate()), seed=11)
    runs = bursts(lost)
    mean = ge.mean_burst()
    var = sum((k + 1 - mean) ** 2 * p for k, p in enumerate(ge.burst_pmf(200)))
    assert abs(sum(runs) / len(runs) - mean) > Z * math.sqrt(var / len(runs))


def test_two_draws_per_frame_so_decisions_depend_on_the_count_only() -> None:
    m = make_model("gilbert-elliott", 0.1, 0.3, 0.9, 0.01)
    s1, s2 = LossState(m, random.Random(5)), LossState(m, random.Random(5))
    first = [s1.lost() for _ in range(1000)]
    assert first == [s2.lost() for _ in range(1000)]
    rng = random.Random(5)
    for _ in range(1000):
        rng.random()
        rng.random()
    assert s1.rng.getstate() == rng.getstate()


@pytest.mark.parametrize(("args", "message"), [
    (("simple-gilbert", 0.1, 0.3, 0.5), "takes p, r, not 1-h"),
    (("gilbert", 0.1, 0.3), "needs 1-h"),
    (("gilbert-elliott", 0.1, 0.3, 0.5), "needs 1-h and 1-k"),
    (("gilbert", 0.1, None, 0.5), "needs r"),
    (("gilbert", 1.5, 0.3, 0.5), "p=1.5 is not a probability"),
    (("simple-gilbert", 0.1, 0.0), "never left"),
    (("netem", 0.1), "not one of"),
])
def test_bad_parameters(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_model(*args)
