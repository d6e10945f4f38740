"""Command-line arguments and the result record shared by the benchmark's training scripts."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def parse_training_arguments(description: str, framework: str):
    """Parse the arguments of train_tf.py or train_opacus.py; ``framework`` names the library."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="The .npz of prepare_data.py.")
    parser.add_argument("--output", type=Path, required=True, help="JSON Lines file to append.")
    parser.add_argument(
        "--plan-cache", type=Path, required=True, help="JSON cache of the noise plans."
    )
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256, help="Expected batch size.")
    parser.add_argument(
        "--learning-rate", type=float, default=0.002, help="Adam learning rate of the baseline."
    )
    parser.add_argument(
        "--dp-learning-rate", type=float, default=0.002, help="Adam learning rate of DP runs."
    )
    parser.add_argument(
        "--dp-l2-norm-clip", type=float, default=1.0, help="Per-example L2 clipping norm."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help=f"Intra-op and inter-op thread count. 0 keeps {framework}'s default.",
    )
    return parser.parse_args()


def append_record(output: Path, record: dict, seed: int, target_epsilon: float | None) -> None:
    """Append one training run's record to the JSON Lines file and log its headline."""
    with output.open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    logger.info(
        "seed %d, %s: test accuracy %.4f, attack AUC %.4f, %.1f s",
        seed,
        "baseline" if target_epsilon is None else f"epsilon {target_epsilon:g}",
        record["test_accuracy"],
        record["attack_auc"],
        record["train_seconds"],
    )
