"""Differential privacy: the zCDP accountant, the Gaussian mechanism for count tables and the noisy
targets that DP selection reads instead of training (pure numpy; see ``docs/metrics.md``)."""

from synth_core.dp._accountant import (
    DEFAULT_DELTA,
    DEFAULT_SELECTION_SHARE,
    PrivacyBudget,
    PrivacyStatement,
    compose_rho,
    epsilon_to_rho,
    gaussian_rho,
    gaussian_sigma,
    rho_to_epsilon,
)
from synth_core.dp._mechanism import NoisyTargets, gaussian_release, noise_rng

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_SELECTION_SHARE",
    "NoisyTargets",
    "PrivacyBudget",
    "PrivacyStatement",
    "compose_rho",
    "epsilon_to_rho",
    "gaussian_release",
    "gaussian_rho",
    "gaussian_sigma",
    "noise_rng",
    "rho_to_epsilon",
]
