"""Our side of the privacy benchmark: the pipeline's DP-SGD with TensorFlow Privacy.

Every run goes through ``dp_pipeline.training`` as the DAG's train step does.
``plan_privacy`` calibrates the noise multiplier for the target epsilon. ``fit_dp_model``
draws the Poisson batches and trains, ``fit_baseline`` trains the non-private reference,
and ``export_model`` returns the sigmoid model that is scored. The timed span is the call
of ``fit_dp_model`` or ``fit_baseline``, which includes building the model and drawing
the Poisson samples. Each run appends one JSON line to ``--output``.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import metadata
from pathlib import Path

import numpy as np
from arguments import append_record, parse_training_arguments
from machine import CpuMonitor

from dp_pipeline import privacy, training
from dp_pipeline.audit import membership_attack_auc
from dp_pipeline.evaluation import AUDIT_ROWS, AUDIT_SEED, classification_metrics

logger = logging.getLogger("train_tf")

SIDE = "tensorflow-privacy"


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def plan_dp_runs(arguments, examples: int, cache_path: Path) -> dict[float, dict]:
    """Return the privacy plan and its accounting for each target epsilon.

    Calibration takes a few seconds per epsilon, so plans are cached in ``cache_path``
    under a key of every parameter that the plan depends on.
    """
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    plans = {}
    for target_epsilon in arguments.epsilons:
        config = dp_config(arguments, target_epsilon, seed=0)
        key = json.dumps(
            [examples, target_epsilon, config.delta, config.epochs, config.batch_size,
             config.l2_norm_clip]
        )  # fmt: skip
        if key not in cache:
            parameters = training.plan_privacy(config, examples)
            cache[key] = privacy.account(parameters, config.delta)
            logger.info(
                "Planned epsilon %g: noise multiplier %.4f, PLD epsilon %.4f",
                target_epsilon,
                parameters.noise_multiplier,
                cache[key]["epsilon"],
            )
        plans[target_epsilon] = cache[key]
    cache_path.write_text(json.dumps(cache, indent=2))
    return plans


def dp_config(arguments, target_epsilon: float, seed: int) -> training.TrainingConfig:
    return training.TrainingConfig(
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        learning_rate=arguments.dp_learning_rate,
        l2_norm_clip=arguments.dp_l2_norm_clip,
        target_epsilon=target_epsilon,
        delta=arguments.delta,
        seed=seed,
    )


def baseline_config(arguments, seed: int) -> training.TrainingConfig:
    return training.TrainingConfig(
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        seed=seed,
    )


def score(trained, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Score the exported sigmoid model as the evaluate step does, plus the validation split."""
    model = training.export_model(trained, arrays["x_train"].shape[1])
    metrics = {}
    for split in ("validation", "test"):
        probabilities = model.predict(arrays[f"x_{split}"], batch_size=4096, verbose=0)
        for name, value in classification_metrics(arrays[f"y_{split}"], probabilities).items():
            metrics[f"{split}_{name}"] = value
    metrics["attack_auc"] = membership_attack_auc(
        model,
        (arrays["x_train"], arrays["y_train"]),
        (arrays["x_test"], arrays["y_test"]),
        rows=AUDIT_ROWS,
        seed=AUDIT_SEED,
    )
    return metrics


def warm_up(arrays: dict[str, np.ndarray]) -> None:
    """Train one short DP and one short baseline run, so one-off runtime start-up is not timed."""
    features, labels = arrays["x_train"], arrays["y_train"]
    config = training.TrainingConfig(epochs=1, noise_multiplier=1.0)
    training.fit_dp_model(features, labels, training.plan_privacy(config, len(labels)), config)
    training.fit_baseline(features, labels, config)


def run_dp(arguments, arrays, target_epsilon: float, plan: dict, seed: int) -> dict:
    config = dp_config(arguments, target_epsilon, seed)
    fields = privacy.DpSgdParameters.__dataclass_fields__
    parameters = privacy.DpSgdParameters(**{name: plan[name] for name in fields})
    with CpuMonitor() as monitor:
        trained = training.fit_dp_model(arrays["x_train"], arrays["y_train"], parameters, config)
    return {
        "configuration": "dp",
        "target_epsilon": config.target_epsilon,
        "learning_rate": config.learning_rate,
        "l2_norm_clip": config.l2_norm_clip,
        "noise_multiplier": parameters.noise_multiplier,
        "sampling_probability": parameters.sampling_probability,
        "expected_batch_size": parameters.expected_batch_size,
        "steps": parameters.steps,
        "epsilon_pld": plan["epsilon"],
        "epsilon_rdp": plan["epsilon_rdp"],
        "epsilon_library": plan["epsilon"],
        "library_accountant": "dp_accounting PLD (the pipeline's headline accountant)",
        **monitor.as_record(),
        **score(trained, arrays),
    }


def run_baseline(arguments, arrays, seed: int) -> dict:
    config = baseline_config(arguments, seed)
    with CpuMonitor() as monitor:
        trained = training.fit_baseline(arrays["x_train"], arrays["y_train"], config)
    steps_per_epoch = -(-len(arrays["y_train"]) // config.batch_size)
    return {
        "configuration": "baseline",
        "target_epsilon": None,
        "learning_rate": config.learning_rate,
        "l2_norm_clip": None,
        "noise_multiplier": 0.0,
        "sampling_probability": None,
        "expected_batch_size": float(config.batch_size),
        "steps": config.epochs * steps_per_epoch,
        **monitor.as_record(),
        **score(trained, arrays),
    }


def runtime_facts() -> dict:
    import tensorflow as tf

    return {
        "side": SIDE,
        "versions": {
            name: metadata.version(name)
            for name in ("tensorflow", "tensorflow-privacy", "dp-accounting", "numpy")
        },
        # 0 means TensorFlow picks the thread count itself (one per logical CPU).
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "pid": os.getpid(),
    }


def set_threads(threads: int) -> None:
    """Fix TensorFlow's thread pools; must run before TensorFlow executes any operation."""
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def main() -> None:
    arguments = parse_training_arguments(__doc__.splitlines()[0], "TensorFlow")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    set_threads(arguments.threads)
    arrays = load_arrays(arguments.data)
    plans = plan_dp_runs(arguments, len(arrays["y_train"]), arguments.plan_cache)
    facts = runtime_facts()

    warm_up(arrays)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)

    for seed in arguments.seeds:
        for target_epsilon in (None, *arguments.epsilons):
            if target_epsilon is None:
                record = run_baseline(arguments, arrays, seed)
            else:
                record = run_dp(arguments, arrays, target_epsilon, plans[target_epsilon], seed)
            record = {**facts, "seed": seed, "delta": arguments.delta, **record}
            record["epochs"] = arguments.epochs
            append_record(arguments.output, record, seed, target_epsilon)


if __name__ == "__main__":
    main()
