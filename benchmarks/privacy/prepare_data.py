"""Encode the Adult files once, so both sides of the benchmark train on identical arrays.

Parsing, the seeded train/validation split and the encoder are the pipeline's own
(``dp_pipeline.validate``, ``dp_pipeline.preprocess``, ``dp_pipeline.features``). The
output is one .npz file with float32 features and labels of shape (n, 1) for the train,
validation and test splits, plus a JSON summary with the SHA-256 of the source files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from dp_pipeline import adult
from dp_pipeline.features import AdultEncoder
from dp_pipeline.preprocess import split_train_validation, to_frame
from dp_pipeline.validate import parse_adult_file

logger = logging.getLogger("prepare_data")

# The DAG's defaults for the split, so the benchmark trains on the rows the pipeline uses.
VALIDATION_FRACTION = 0.1
SPLIT_SEED = 42


def encode_splits(data_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Parse, split and encode adult.data and adult.test from ``data_dir``."""
    sources = {}
    parsed = {}
    for file_name in (adult.TRAIN_FILE, adult.TEST_FILE):
        path = data_dir / file_name
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found. Set BENCH_DATA_DIR to the folder with adult.data and "
                "adult.test."
            )
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        sources[file_name] = {
            "path": str(path.resolve()),
            "sha256": digest,
            "matches_uci_release": digest == adult.KNOWN_SHA256[file_name],
        }
        parsed[file_name] = parse_adult_file(file_name, content)

    train, validation = split_train_validation(
        to_frame(parsed[adult.TRAIN_FILE].columns), VALIDATION_FRACTION, SPLIT_SEED
    )
    test = to_frame(parsed[adult.TEST_FILE].columns)
    encoder = AdultEncoder()
    arrays = {}
    for name, frame in (("train", train), ("validation", validation), ("test", test)):
        arrays[f"x_{name}"] = encoder.transform(frame)
        arrays[f"y_{name}"] = frame[adult.LABEL].to_numpy(dtype="float32").reshape(-1, 1)
    summary = {
        "sources": sources,
        "validation_fraction": VALIDATION_FRACTION,
        "split_seed": SPLIT_SEED,
        "features": int(arrays["x_train"].shape[1]),
        "rows": {
            name: int(arrays[f"y_{name}"].shape[0]) for name in ("train", "validation", "test")
        },
        "positive_rate": {
            name: float(arrays[f"y_{name}"].mean()) for name in ("train", "validation", "test")
        },
    }
    return arrays, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="Folder with adult.data.")
    parser.add_argument("--output", type=Path, required=True, help="Path of the .npz to write.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", force=True)

    arrays, summary = encode_splits(args.data_dir)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.output, **arrays)
    args.output.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    logger.info("Wrote %s: %s", args.output, summary["rows"])


if __name__ == "__main__":
    main()
