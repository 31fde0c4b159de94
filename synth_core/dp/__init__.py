"""Differential privacy: the zCDP accountant, the Gaussian mechanism for count tables, the noisy
targets that DP selection reads instead of training, and the DP marginal model that a DP flat
table's pool is drawn from (see ``docs/metrics.md``)."""

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
from synth_core.dp._domain import ColumnDomain, Domain, DomainRelease, declared_domain, private_domain
from synth_core.dp._marginal import MarginalSettings, fit_marginal_model, marginal_record, sample_marginal_model
from synth_core.dp._mechanism import NoisyTargets, gaussian_release, noise_rng

__all__ = [
    "ColumnDomain",
    "Domain",
    "DomainRelease",
    "MarginalSettings",
    "declared_domain",
    "fit_marginal_model",
    "marginal_record",
    "private_domain",
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
    "sample_marginal_model",
]
