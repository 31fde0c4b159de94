"""zCDP accounting: ρ ↔ (ε, δ), composition, and the split of one budget between generator and selection.

Selection releases training only through Gaussian-noised count tables, accounted in zero-concentrated
DP (zCDP): the Gaussian mechanism with L2 sensitivity ``Δ`` and noise ``σ`` is ``ρ = Δ² / (2σ²)``-zCDP,
ρ's add up under composition, and ρ-zCDP implies ``(ρ + 2√(ρ ln(1/δ)), δ)``-DP for every ``δ > 0``
(Bun & Steinke 2016, Proposition 1.3). The generator (DP-SGD in the MOSTLY AI engine) is accounted by
the engine itself (an RDP accountant) and reports an ``(ε_g, δ_g)``. The two parts compose by basic
composition of (ε, δ)-DP: the published table is ``(ε_g + ε_s, δ_g + δ_s)``-DP.

One budget ``(ε, δ)`` is split by :class:`PrivacyBudget`: selection gets ``selection_share · ε`` and half
of δ, the generator the rest of ε and the other half of δ. Neighbouring datasets differ by adding or
removing one training record throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from synth_core.errors import InputError

# The one default of the split: selection spends half of ε. Measured on census (benchmarks/bench_dp.py),
# see benchmarks/RESULTS.md for how the share trades the generator's accuracy against selection's.
DEFAULT_SELECTION_SHARE = 0.5
DEFAULT_DELTA = 1e-6
# The DP generators of a flat dataset: the marginal model (measured against MST/AIM in
# benchmarks/bench_dp_baselines.py) or the engine's DP-SGD (measured in benchmarks/bench_dp.py).
DP_GENERATORS = ("marginal", "engine")
DEFAULT_DP_GENERATOR = "marginal"


def rho_to_epsilon(rho: float, delta: float) -> float:
    """The ε of ``(ε, δ)``-DP implied by ``ρ``-zCDP: ``ρ + 2√(ρ ln(1/δ))``."""
    _check_delta(delta)
    if not rho >= 0:
        raise InputError(f"rho must be non-negative, got {rho!r}")
    return float(rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)))


def epsilon_to_rho(epsilon: float, delta: float) -> float:
    """The largest ρ whose zCDP guarantee implies ``(ε, δ)``-DP (the inverse of :func:`rho_to_epsilon`):
    with ``L = ln(1/δ)``, ``√ρ = √(L + ε) − √L``."""
    _check_delta(delta)
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise InputError(f"epsilon must be a positive number, got {epsilon!r}")
    log_term = math.log(1.0 / delta)
    # the difference of square roots in a cancellation-free form: ε / (√(L+ε) + √L)
    root = epsilon / (math.sqrt(log_term + epsilon) + math.sqrt(log_term))
    return float(root * root)


def compose_rho(*rhos: float) -> float:
    """Sequential composition of zCDP mechanisms: the ρ's add."""
    if any(not r >= 0 for r in rhos):
        raise InputError(f"every rho must be non-negative, got {rhos!r}")
    return float(sum(rhos))


def gaussian_sigma(rho: float, sensitivity: float) -> float:
    """Noise standard deviation of the Gaussian mechanism that is ``ρ``-zCDP at L2 ``sensitivity``:
    ``σ = Δ / √(2ρ)``."""
    if not (rho > 0 and math.isfinite(rho)):
        raise InputError(f"rho must be a positive number, got {rho!r}")
    if not sensitivity > 0:
        raise InputError(f"sensitivity must be positive, got {sensitivity!r}")
    return float(sensitivity / math.sqrt(2.0 * rho))


def gaussian_rho(sigma: float, sensitivity: float) -> float:
    """The ρ of the Gaussian mechanism with noise ``σ`` at L2 ``sensitivity``: ``Δ² / (2σ²)``."""
    if not sigma > 0:
        raise InputError(f"sigma must be positive, got {sigma!r}")
    return float(sensitivity * sensitivity / (2.0 * sigma * sigma))


def _check_delta(delta: float) -> None:
    if not (isinstance(delta, (int, float)) and 0.0 < float(delta) < 1.0):
        raise InputError(f"delta must lie in (0, 1), got {delta!r}")


@dataclass(frozen=True)
class PrivacyBudget:
    """A total ``(ε, δ)`` for one published table, split between the generator and selection.

    ``generator``: ``marginal`` (the default, :func:`synth_core.dp.fit_marginal_model`) spends all of
    ``(ε, δ)`` on the model and selection only reads its pool (no budget); ``engine`` (the MOSTLY AI
    engine's DP-SGD) gives ``selection_share`` of ε to selection (converted to ρ at ``δ/2``) and the
    rest of ε and the other ``δ/2`` to training. ``selection_share`` must lie in (0, 1).
    """

    epsilon: float
    delta: float = DEFAULT_DELTA
    selection_share: float = DEFAULT_SELECTION_SHARE
    generator: str = DEFAULT_DP_GENERATOR

    def __post_init__(self) -> None:
        if isinstance(self.epsilon, bool) or not isinstance(self.epsilon, (int, float)) or not (
                math.isfinite(self.epsilon) and self.epsilon > 0):
            raise InputError(f"privacy epsilon must be a positive number, got {self.epsilon!r}")
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not 0 < self.delta < 1:
            raise InputError(f"privacy delta must lie in (0, 1), got {self.delta!r}")
        share = self.selection_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
            raise InputError(f"privacy selection_share must lie in (0, 1), got {share!r}")
        if self.generator not in DP_GENERATORS:
            raise InputError(f"privacy generator must be one of {', '.join(DP_GENERATORS)}, got {self.generator!r}")

    @property
    def selection_spends(self) -> bool:
        """Whether selection reads training (``engine``) or only the DP pool (``marginal``)."""
        return self.generator == "engine"

    @property
    def selection_epsilon(self) -> float:
        return float(self.epsilon * self.selection_share) if self.selection_spends else 0.0

    @property
    def selection_delta(self) -> float:
        return float(self.delta / 2.0) if self.selection_spends else 0.0

    @property
    def selection_rho(self) -> float:
        """The ρ selection may spend (zCDP), equivalent to ``(selection_epsilon, selection_delta)``."""
        return epsilon_to_rho(self.selection_epsilon, self.selection_delta) if self.selection_spends else 0.0

    @property
    def generator_epsilon(self) -> float:
        return float(self.epsilon - self.selection_epsilon)

    @property
    def generator_delta(self) -> float:
        return float(self.delta - self.selection_delta)

    def to_dict(self) -> dict:
        out = {"epsilon": self.epsilon, "delta": self.delta, "generator": self.generator}
        return {**out, "selection_share": self.selection_share} if self.selection_spends else out

    @classmethod
    def from_dict(cls, data: dict | None) -> PrivacyBudget | None:
        """``None`` for no setting (non-DP mode); :class:`InputError` for unknown keys or bad values."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise InputError(f"privacy must be a mapping with epsilon, delta, generator, selection_share, got {data!r}")
        unknown = sorted(set(data) - {"epsilon", "delta", "selection_share", "generator"})
        if unknown:
            raise InputError(f"privacy: unknown setting {unknown[0]!r} (known: epsilon, delta, generator, "
                             "selection_share)")
        if "epsilon" not in data:
            raise InputError("privacy: epsilon is required")
        data = dict(data)
        if "selection_share" in data:  # a share for selection implies the split of the engine's DP-SGD
            if data.setdefault("generator", "engine") != "engine":
                raise InputError("privacy: selection_share applies to generator: engine only (the marginal model "
                                 "spends the whole budget and selection none)")
        return cls(**data)


# Where a statement's generator (ε, δ) comes from. Only a recorded spend is composed without a
# condition: a number the user types is a claim about a pool this run cannot inspect.
GENERATOR_SOURCES = {
    "engine": "reported by the engine for this run's DP training",
    "marginal model": "spent by this run's DP marginal model",
    "pool record": "recorded by this project's DP generator in the pool's manifest",
    "stated": "stated with --generator-epsilon, not verified",
}


@dataclass(frozen=True)
class PrivacyStatement:
    """The composed guarantee of a published table: generator ``(ε_g, δ_g)`` plus selection's ρ-zCDP
    stated at ``δ_s`` (basic composition).

    ``generator_source`` says where ``(ε_g, δ_g)`` comes from (a key of :data:`GENERATOR_SOURCES`);
    ``None`` with no generator figures: the pool's provenance is unknown and only selection's own
    guarantee is stated -- the output's then depends on how the pool was made.
    """

    selection_rho: float
    selection_delta: float
    selection_sigma: float
    generator_epsilon: float | None
    generator_delta: float | None
    generator_source: str | None = None
    generator_budget: tuple[float, float] | None = None  # the generator's share of the budget, for the text

    def __post_init__(self) -> None:
        if (self.generator_epsilon is None) != (self.generator_delta is None):
            raise InputError("a privacy statement needs both the generator's ε and δ, or neither")
        if self.generator_source is not None and self.generator_source not in GENERATOR_SOURCES:
            raise InputError(f"unknown generator source {self.generator_source!r}")

    @property
    def selection_epsilon(self) -> float:
        return 0.0 if self.selection_rho == 0 else rho_to_epsilon(self.selection_rho, self.selection_delta)

    @property
    def covers_generator(self) -> bool:
        return self.generator_epsilon is not None

    @property
    def epsilon(self) -> float | None:
        """Composed ε (``None`` when the generator is not DP: then no guarantee covers the table)."""
        return None if self.generator_epsilon is None else float(self.generator_epsilon + self.selection_epsilon)

    @property
    def delta(self) -> float | None:
        return None if self.generator_delta is None else float(self.generator_delta + self.selection_delta)

    @property
    def covers(self) -> str:
        """What the stated (ε, δ) covers, in one sentence."""
        if not self.covers_generator:
            return ("selection's use of training only: the pool's provenance is unknown, so the output's guarantee "
                    "depends on how the pool was made (it holds only if the pool's generator is itself DP on the "
                    "same training data)")
        if self.generator_source == "stated":
            return ("the published table, on the condition that the pool's generator is DP as --generator-epsilon "
                    "states (not verified)")
        return "the published table's dependence on any one training record"

    def headline(self) -> str:
        """``(ε, δ) = (…) for …``: the one line a reader needs."""
        sel = f"selection ({self.selection_epsilon:.4g}, {self.selection_delta:.3g})" if self.selection_rho > 0 else \
            "selection (0, 0: it reads only the generator's DP output)"
        if not self.covers_generator:
            line = f"(ε, δ) = ({self.selection_epsilon:.4g}, {self.selection_delta:.3g}) for {self.covers}"
            if self.generator_budget is not None:
                line += (f"; a DP generator on the same data within its budget ({self.generator_budget[0]:.4g}, "
                         f"{self.generator_budget[1]:.3g}) would give the output "
                         f"({self.selection_epsilon + self.generator_budget[0]:.4g}, "
                         f"{self.selection_delta + self.generator_budget[1]:.3g})")
            return line
        source = GENERATOR_SOURCES.get(self.generator_source or "engine")
        return (f"(ε, δ) = ({self.epsilon:.4g}, {self.delta:.3g}) for the output"
                f"{' if the pool is DP as stated' if self.generator_source == 'stated' else ''}: generator "
                f"({self.generator_epsilon:.4g}, {self.generator_delta:.3g}, {source}) + {sel}")

    def to_dict(self) -> dict:
        return {"epsilon": self.epsilon, "delta": self.delta, "generator_epsilon": self.generator_epsilon,
                "generator_delta": self.generator_delta, "selection_epsilon": self.selection_epsilon,
                "selection_delta": self.selection_delta, "selection_rho": self.selection_rho,
                "selection_sigma": self.selection_sigma, "generator_source": self.generator_source,
                "covers": self.covers, "statement": self.headline()}
