"""Loss models: independent (Bernoulli) loss and the two-state Gilbert-Elliott family, with
netem's parameters, plus the analytic loss rate and loss-burst lengths each model predicts.

netem (`tc qdisc ... netem loss gemodel p r 1-h 1-k`) names the parameters so:
  p    P(good -> bad) per frame          r    P(bad -> good) per frame
  1-h  loss probability in the bad state 1-k  loss probability in the good state
Models, by how many parameters they use (as netem and Salsano et al., "Definition of a general
and intuitive loss model for packet networks", define them):
  simple-gilbert   p, r          (1-h = 1, 1-k = 0: every frame in the bad state is lost)
  gilbert          p, r, 1-h     (1-k = 0)
  gilbert-elliott  p, r, 1-h, 1-k

Per frame: the frame is lost with the current state's loss probability, then the state moves
(as netem does). Each two-state model draws exactly two random numbers per frame (one for the
loss, one for the transition), Bernoulli one, so the sequence of decisions depends only on the
seed and the frame count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MODELS = ("bernoulli", "simple-gilbert", "gilbert", "gilbert-elliott")
# The parameters each model takes (the others keep their defining values).
MODEL_PARAMS = {
    "bernoulli": ("p",),
    "simple-gilbert": ("p", "r"),
    "gilbert": ("p", "r", "1-h"),
    "gilbert-elliott": ("p", "r", "1-h", "1-k"),
}


@dataclass(frozen=True)
class LossModel:
    """A loss model; `p` alone (model "bernoulli") is independent loss with probability p."""

    model: str = "bernoulli"
    p: float = 0.0
    r: float = 1.0
    loss_bad: float = 1.0  # netem's 1-h
    loss_good: float = 0.0  # netem's 1-k

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"loss model {self.model!r} is not one of {', '.join(MODELS)}")
        for name, value in (("p", self.p), ("r", self.r), ("1-h", self.loss_bad), ("1-k", self.loss_good)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}={value} is not a probability in [0, 1]")
        if self.model != "bernoulli" and self.p > 0 and self.r == 0:
            raise ValueError("r=0 with p>0: the bad state is never left (the link is dead, not bursty)")

    @property
    def is_noop(self) -> bool:
        return self.loss_rate() == 0.0

    # -- analytic values ---------------------------------------------------------------------
    def stationary_bad(self) -> float:
        """The long-run share of frames seen in the bad state, p / (p + r)."""
        if self.model == "bernoulli":
            return 0.0
        return self.p / (self.p + self.r) if self.p + self.r else 0.0

    def emission(self) -> tuple[float, float]:
        """(loss probability in the good state, in the bad state)."""
        if self.model == "bernoulli":
            return self.p, self.p
        return self.loss_good, self.loss_bad

    def loss_rate(self) -> float:
        """The long-run fraction of frames lost."""
        good, bad = self.emission()
        pb = self.stationary_bad()
        return (1 - pb) * good + pb * bad

    def loss_rate_variance(self, n: int) -> float:
        """Variance of the measured loss rate over n frames (asymptotic, for large n): the
        Bernoulli part L(1-L)/n plus the lag covariances of the hidden state, which decay as
        (1-p-r)**k: 2 (e_B - e_G)^2 pi_G pi_B lam / (1 - lam) / n."""
        rate = self.loss_rate()
        var = rate * (1 - rate)
        good, bad = self.emission()
        pb = self.stationary_bad()
        lam = 1.0 - self.p - self.r if self.model != "bernoulli" else 0.0
        if lam < 1.0 and pb:
            var += 2 * (bad - good) ** 2 * pb * (1 - pb) * lam / (1 - lam)
        return var / n

    def burst_pmf(self, n_max: int) -> list[float]:
        """P(a loss burst is exactly n frames long) for n = 1..n_max (index 0 is n=1).

        A burst is a run of lost frames between two delivered ones. With emission matrices
        D1 (lost) and D0 (delivered) and transition matrix T, starting from the stationary
        distribution pi:  P(L = n) = pi D0 (T D1)^n T D0 1 / (pi D0 T D1 1)."""
        good, bad = self.emission()
        pb = self.stationary_bad()
        if self.model == "bernoulli":
            t = ((1.0, 0.0), (0.0, 1.0))
        else:
            t = ((1 - self.p, self.p), (self.r, 1 - self.r))
        d1 = (good, bad)
        d0 = (1 - good, 1 - bad)

        def step(v: tuple[float, float], d: tuple[float, float]) -> tuple[float, float]:
            # row vector v times T, then times diag(d)
            return ((v[0] * t[0][0] + v[1] * t[1][0]) * d[0], (v[0] * t[0][1] + v[1] * t[1][1]) * d[1])

        start = ((1 - pb) * d0[0], pb * d0[1])  # pi D0
        first = step(start, d1)  # pi D0 T D1
        norm = first[0] + first[1]
        if norm == 0:
            return [0.0] * n_max
        out = []
        v = first
        for _ in range(n_max):
            end = step(v, d0)  # ... T D0
            out.append((end[0] + end[1]) / norm)
            v = step(v, d1)
        return out

    def mean_burst(self) -> float:
        """Mean loss-burst length: the lost fraction over the rate of bursts starting."""
        good, bad = self.emission()
        pb = self.stationary_bad()
        if self.model == "bernoulli":
            return 1 / (1 - self.p) if self.p < 1 else float("inf")
        t = ((1 - self.p, self.p), (self.r, 1 - self.r))
        # P(delivered at i, lost at i+1) = pi D0 T D1 1
        v = ((1 - pb) * (1 - good), pb * (1 - bad))
        starts = (v[0] * t[0][0] + v[1] * t[1][0]) * good + (v[0] * t[0][1] + v[1] * t[1][1]) * bad
        return self.loss_rate() / starts if starts else float("inf")

    def describe(self) -> str:
        if self.model == "bernoulli":
            return f"loss {self.p:.4g}"
        parts = [f"p={self.p:.4g}", f"r={self.r:.4g}"]
        if self.model in ("gilbert", "gilbert-elliott"):
            parts.append(f"1-h={self.loss_bad:.4g}")
        if self.model == "gilbert-elliott":
            parts.append(f"1-k={self.loss_good:.4g}")
        return f"{self.model} " + " ".join(parts)


def make_model(model: str, p: float, r: float | None = None, loss_bad: float | None = None,
               loss_good: float | None = None) -> LossModel:
    """A LossModel from netem-style parameters; the ones a model does not take must be None."""
    given = {"r": r, "1-h": loss_bad, "1-k": loss_good}
    if model not in MODELS:
        raise ValueError(f"loss model {model!r} is not one of {', '.join(MODELS)}")
    takes = MODEL_PARAMS[model]
    for name, value in given.items():
        if value is not None and name not in takes:
            raise ValueError(f"model {model} takes {', '.join(takes)}, not {name}")
    if model != "bernoulli" and r is None:
        raise ValueError(f"model {model} needs r (P(bad -> good))")
    if model == "gilbert" and loss_bad is None:
        raise ValueError("model gilbert needs 1-h (the loss probability in the bad state)")
    if model == "gilbert-elliott" and (loss_bad is None or loss_good is None):
        raise ValueError("model gilbert-elliott needs 1-h and 1-k")
    return LossModel(model, p, 1.0 if r is None else r, 1.0 if loss_bad is None else loss_bad,
                     0.0 if loss_good is None else loss_good)


class LossState:
    """A running loss model: `lost()` decides one frame. A fixed number of draws per frame
    (two for the Gilbert models, one for Bernoulli)."""

    __slots__ = ("model", "rng", "bad")

    def __init__(self, model: LossModel, rng: random.Random) -> None:
        self.model = model
        self.rng = rng
        self.bad = False  # start in the good state, as netem

    def lost(self) -> bool:
        m = self.model
        rng = self.rng
        if m.model == "bernoulli":  # no state: one draw per frame
            return rng.random() < m.p
        u_loss, u_move = rng.random(), rng.random()
        lost = u_loss < (m.loss_bad if self.bad else m.loss_good)
        if self.bad:
            if u_move < m.r:
                self.bad = False
        elif u_move < m.p:
            self.bad = True
        return lost
