"""Empirical privacy audit: a loss-threshold membership-inference attack.

The attacker scores each row by its negative loss under the model, because members of
the training set tend to have lower loss. The attack's ROC AUC measures how well that
score separates training rows from held-out rows, and 0.5 is chance. The audit is a sanity
check of what one simple attack achieves, not a proof of privacy; the (epsilon, delta)
guarantee bounds every attack.
"""

from __future__ import annotations


def per_example_loss(model, features, labels):
    """Binary cross-entropy of each row under a model that outputs probabilities."""
    import numpy as np

    probabilities = model.predict(features, batch_size=4096, verbose=0).ravel()
    probabilities = np.clip(probabilities, 1e-7, 1 - 1e-7)
    labels = np.asarray(labels).ravel()
    return -(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))


def membership_attack_auc(model, members, non_members, *, rows: int, seed: int) -> float:
    """ROC AUC of the loss-threshold attack on ``rows`` members against as many non-members.

    ``members`` and ``non_members`` are (features, labels) pairs; equal sample sizes keep
    the AUC comparable across runs.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    rows = min(rows, len(members[1]), len(non_members[1]))
    scores, is_member = [], []
    for (features, labels), flag in ((members, 1), (non_members, 0)):
        chosen = rng.choice(len(labels), size=rows, replace=False)
        scores.append(-per_example_loss(model, features[chosen], labels[chosen]))
        is_member.append(np.full(rows, flag))
    return float(roc_auc_score(np.concatenate(is_member), np.concatenate(scores)))
