"""The Opacus peer of the privacy benchmark: the same MLP and data, trained with PyTorch.

DP runs take Opacus's standard path. ``PrivacyEngine.make_private`` turns a DataLoader
with the expected batch size into a Poisson-sampling DPDataLoader
(``poisson_sampling=True``) and sets up ghost clipping (``grad_sample_mode="ghost"``),
which returns a wrapped criterion. The noise multiplier comes from Opacus's PRV
accountant through ``get_noise_multiplier``, the call that ``make_private_with_epsilon``
makes. It is computed once per epsilon, before the timed span. The timed span covers
building the model, ``make_private`` and the training loop, which includes the Poisson
sampling. Scoring reuses ``dp_pipeline.evaluation`` and ``dp_pipeline.audit``, which
need only numpy and scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from arguments import append_record, parse_training_arguments
from machine import CpuMonitor
from opacus import PrivacyEngine
from opacus.accountants.utils import get_noise_multiplier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dp_pipeline.audit import membership_attack_auc
from dp_pipeline.evaluation import AUDIT_ROWS, AUDIT_SEED, classification_metrics
from dp_pipeline.training import HIDDEN_UNITS

logger = logging.getLogger("train_opacus")

SIDE = "opacus"
ACCOUNTANT = "prv"
# Keras's default epsilon of Adam. PyTorch's default is 1e-8.
ADAM_EPSILON = 1e-7


def load_arrays(path: Path) -> dict[str, torch.Tensor]:
    with np.load(path) as data:
        return {name: torch.from_numpy(data[name]) for name in data.files}


def build_mlp(input_dim: int) -> nn.Sequential:
    """Build the pipeline's MLP (64-32-1, ReLU, one logit) with Keras's default initialisers.

    Keras Dense layers start from Glorot-uniform kernels and zero biases, so the two sides
    start from the same distribution of weights.
    """
    layers: list[nn.Module] = []
    width = input_dim
    for units in HIDDEN_UNITS:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, 1))
    model = nn.Sequential(*layers)
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


class ProbabilityModel:
    """A trained logit network behind the Keras-style ``predict`` that dp_pipeline calls."""

    def __init__(self, network: nn.Module):
        self.network = network.eval()

    def predict(self, features, batch_size: int = 4096, verbose: int = 0) -> np.ndarray:
        features = torch.as_tensor(np.asarray(features))
        with torch.no_grad():
            chunks = [
                torch.sigmoid(self.network(features[start : start + batch_size]))
                for start in range(0, len(features), batch_size)
            ]
        return torch.cat(chunks).numpy()


def copy_weights(trained: nn.Module, input_dim: int) -> nn.Module:
    """Copy trained weights into a fresh network, free of the Opacus hooks."""
    plain = build_mlp(input_dim)
    plain.load_state_dict(trained.state_dict())
    return plain


def score(network: nn.Module, arrays: dict[str, torch.Tensor]) -> dict[str, float]:
    model = ProbabilityModel(copy_weights(network, arrays["x_train"].shape[1]))
    metrics = {}
    for split in ("validation", "test"):
        probabilities = model.predict(arrays[f"x_{split}"])
        labels = arrays[f"y_{split}"].numpy()
        for name, value in classification_metrics(labels, probabilities).items():
            metrics[f"{split}_{name}"] = value
    metrics["attack_auc"] = membership_attack_auc(
        model,
        (arrays["x_train"].numpy(), arrays["y_train"].numpy()),
        (arrays["x_test"].numpy(), arrays["y_test"].numpy()),
        rows=AUDIT_ROWS,
        seed=AUDIT_SEED,
    )
    return metrics


def train_loader(arrays, batch_size: int, *, shuffle: bool) -> DataLoader:
    return DataLoader(
        TensorDataset(arrays["x_train"], arrays["y_train"]), batch_size=batch_size, shuffle=shuffle
    )


def batch_loss(model, criterion, features, labels):
    """Apply ``criterion`` to the logits and labels of a batch, both flattened to shape (B,).

    Opacus's ghost clipping multiplies the per-example losses by clipping coefficients of
    shape (B,). Losses of shape (B, 1) broadcast against them to (B, B) without an error,
    and the gradient becomes the unclipped sum times the sum of the coefficients.
    """
    return criterion(model(features).squeeze(1), labels.squeeze(1))


def make_private_ghost(network, optimizer, loader, noise_multiplier: float, clip_norm: float):
    """Wrap the training objects for DP-SGD with Poisson sampling and ghost clipping."""
    engine = PrivacyEngine(accountant=ACCOUNTANT)
    model, optimizer, criterion, loader = engine.make_private(
        module=network,
        optimizer=optimizer,
        criterion=nn.BCEWithLogitsLoss(),
        data_loader=loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=clip_norm,
        poisson_sampling=True,
        grad_sample_mode="ghost",
    )
    return engine, model, optimizer, criterion, loader


def check_ghost_clipping(arrays, rows: int = 32, clip_norm: float = 0.01) -> None:
    """Raise RuntimeError unless ghost clipping yields the sum of clipped per-example gradients.

    The reference clips each row's gradient by hand. ``clip_norm`` is small so that every
    row is clipped. One backward pass through Opacus, without noise, must match it.
    """
    torch.manual_seed(0)
    features, labels = arrays["x_train"][:rows], arrays["y_train"][:rows]
    network = build_mlp(features.shape[1])
    expected = 0
    for row in range(rows):
        network.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(
            network(features[row : row + 1]), labels[row : row + 1], reduction="sum"
        )
        loss.backward()
        gradient = torch.cat([p.grad.flatten() for p in network.parameters()])
        expected = expected + gradient * min(1.0, clip_norm / (gradient.norm().item() + 1e-6))

    optimizer = torch.optim.SGD(network.parameters(), lr=0.0)
    loader = DataLoader(TensorDataset(features, labels), batch_size=rows)
    _, model, optimizer, criterion, _ = make_private_ghost(
        network, optimizer, loader, 0.0, clip_norm
    )
    optimizer.zero_grad()
    batch_loss(model, criterion, features, labels).backward()
    actual = torch.cat([p.grad.flatten() for p in network.parameters()])
    if not torch.allclose(actual, expected, rtol=1e-3, atol=1e-6):
        raise RuntimeError(
            "Opacus ghost clipping did not return the sum of clipped per-example gradients: "
            f"norm {actual.norm():.4g}, expected {expected.norm():.4g}. Check the loss shapes "
            "in batch_loss."
        )


def fit_dp_model(arrays, noise_multiplier: float, arguments, seed: int):
    """Train with DP-SGD and ghost clipping, and return the network, engine and optimiser."""
    torch.manual_seed(seed)
    network = build_mlp(arrays["x_train"].shape[1])
    optimizer = torch.optim.Adam(
        network.parameters(), lr=arguments.dp_learning_rate, eps=ADAM_EPSILON
    )
    engine, model, optimizer, criterion, loader = make_private_ghost(
        network,
        optimizer,
        train_loader(arrays, arguments.batch_size, shuffle=False),
        noise_multiplier,
        arguments.dp_l2_norm_clip,
    )
    model.train()
    for _ in range(arguments.epochs):
        for features, labels in loader:
            optimizer.zero_grad()
            batch_loss(model, criterion, features, labels).backward()
            optimizer.step()
    return network, engine, optimizer


def fit_baseline(arrays, arguments, seed: int) -> nn.Module:
    """Train without privacy: shuffled fixed batches, mean loss, Adam, same epochs."""
    torch.manual_seed(seed)
    network = build_mlp(arrays["x_train"].shape[1])
    optimizer = torch.optim.Adam(network.parameters(), lr=arguments.learning_rate, eps=ADAM_EPSILON)
    criterion = nn.BCEWithLogitsLoss()
    network.train()
    for _ in range(arguments.epochs):
        for features, labels in train_loader(arrays, arguments.batch_size, shuffle=True):
            optimizer.zero_grad()
            batch_loss(network, criterion, features, labels).backward()
            optimizer.step()
    return network


def calibrate(arguments, sample_rate: float, cache_path: Path) -> dict[float, float]:
    """Return Opacus's noise multiplier per target epsilon, cached in ``cache_path``."""
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    multipliers = {}
    for target_epsilon in arguments.epsilons:
        key = json.dumps(
            [ACCOUNTANT, sample_rate, target_epsilon, arguments.delta, arguments.epochs]
        )
        if key not in cache:
            cache[key] = get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=arguments.delta,
                sample_rate=sample_rate,
                epochs=arguments.epochs,
                accountant=ACCOUNTANT,
            )
            logger.info("Calibrated epsilon %g: noise multiplier %.4f", target_epsilon, cache[key])
        multipliers[target_epsilon] = cache[key]
    cache_path.write_text(json.dumps(cache, indent=2))
    return multipliers


def run_dp(arguments, arrays, target_epsilon: float, noise_multiplier: float, seed: int) -> dict:
    with CpuMonitor() as monitor:
        network, engine, optimizer = fit_dp_model(arrays, noise_multiplier, arguments, seed)
    return {
        "configuration": "dp",
        "target_epsilon": target_epsilon,
        "learning_rate": arguments.dp_learning_rate,
        "l2_norm_clip": arguments.dp_l2_norm_clip,
        "noise_multiplier": noise_multiplier,
        "sampling_probability": engine.accountant.history[-1][1],
        "expected_batch_size": float(optimizer.expected_batch_size),
        "steps": sum(entry[2] for entry in engine.accountant.history),
        "epsilon_library": float(engine.get_epsilon(arguments.delta)),
        "library_accountant": f"Opacus {ACCOUNTANT.upper()}",
        **monitor.as_record(),
        **score(network, arrays),
    }


def run_baseline(arguments, arrays, seed: int) -> dict:
    with CpuMonitor() as monitor:
        network = fit_baseline(arrays, arguments, seed)
    steps_per_epoch = len(train_loader(arrays, arguments.batch_size, shuffle=True))
    return {
        "configuration": "baseline",
        "target_epsilon": None,
        "learning_rate": arguments.learning_rate,
        "l2_norm_clip": None,
        "noise_multiplier": 0.0,
        "sampling_probability": None,
        "expected_batch_size": float(arguments.batch_size),
        "steps": arguments.epochs * steps_per_epoch,
        **monitor.as_record(),
        **score(network, arrays),
    }


def warm_up(arrays, arguments) -> None:
    """Train one short DP and one short baseline run, so one-off start-up is not timed."""
    short = argparse.Namespace(**{**vars(arguments), "epochs": 1})
    fit_dp_model(arrays, 1.0, short, seed=0)
    fit_baseline(arrays, short, seed=0)


def runtime_facts() -> dict:
    return {
        "side": SIDE,
        "versions": {name: metadata.version(name) for name in ("torch", "opacus", "numpy")},
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "pid": os.getpid(),
    }


def main() -> None:
    arguments = parse_training_arguments(__doc__.splitlines()[0], "PyTorch")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)
    # Opacus warns on every PrivacyEngine that secure_mode is off. The page states that
    # the benchmark uses PyTorch's default generator, because torchcsprng is not installed.
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    if arguments.threads > 0:
        # Must run before PyTorch starts any parallel work.
        torch.set_num_threads(arguments.threads)
        torch.set_num_interop_threads(arguments.threads)
    arrays = load_arrays(arguments.data)
    # Opacus sets the sampling rate to 1 / len(data_loader), as make_private does below.
    sample_rate = 1 / len(train_loader(arrays, arguments.batch_size, shuffle=False))
    multipliers = calibrate(arguments, sample_rate, arguments.plan_cache)
    facts = runtime_facts()

    check_ghost_clipping(arrays)
    warm_up(arrays, arguments)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)

    for seed in arguments.seeds:
        for target_epsilon in (None, *arguments.epsilons):
            if target_epsilon is None:
                record = run_baseline(arguments, arrays, seed)
            else:
                sigma = multipliers[target_epsilon]
                record = run_dp(arguments, arrays, target_epsilon, sigma, seed)
            record = {**facts, "seed": seed, "delta": arguments.delta, **record}
            record["epochs"] = arguments.epochs
            append_record(arguments.output, record, seed, target_epsilon)


if __name__ == "__main__":
    main()
