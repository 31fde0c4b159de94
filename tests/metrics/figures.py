"""Privacy figures the gate tests share."""

# privacy figures of a fair output, as PrivacyResult.to_dict() gives them
CLEAN = {
    "dcr_share": 0.505, "dcr_share_ci": [0.497, 0.513], "nndr_ratio": 0.99,
    "exact_copy_training": 0.0012, "exact_copy_holdout": 0.0010,
    "exact_copy_training_matched": 0.0009, "exact_copy_holdout_matched": 0.0010,
    "exact_copy_excess": -0.0001, "exact_copy_excess_ci": [-0.0006, 0.0004],
    "exact_copy_training_sequences": None, "exact_copy_holdout_sequences": None,
    "membership_auc": 0.515, "membership_auc_ci": [0.508, 0.522], "membership_attack": "distance",
}
