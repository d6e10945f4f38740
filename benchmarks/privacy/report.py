"""Summarise the benchmark runs: tables, target checks, the plot and the raw results.

Runs in the TensorFlow benchmark environment, because it accounts the Opacus runs with
the pipeline's own accountants (``dp_pipeline.privacy``) as well as Opacus's. It rewrites
only the generated section of the results page, between the two marker lines, so the
hand-written method and findings around it stay as they are.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import matplotlib
import pandas as pd

from dp_pipeline import privacy

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

BEGIN_MARKER = "<!-- BEGIN GENERATED: benchmarks/privacy/report.py rewrites this section -->"
END_MARKER = "<!-- END GENERATED -->"
SIDES = {"tensorflow-privacy": "ours (TF Privacy)", "opacus": "Opacus"}
METRICS = {
    "test_accuracy": ("test accuracy", 4),
    "test_roc_auc": ("ROC AUC", 4),
    "attack_auc": ("attack AUC", 4),
    "train_seconds": ("training time (s)", 1),
    "train_cpu_seconds": ("training CPU time (s)", 1),
}
# Targets at the headline privacy level.
TARGET_EPSILON = 1.0
MIN_ACCURACY = 0.845
MAX_ACCURACY_GAP = 0.01
MAX_TIME_RATIO = 2.5
MAX_ATTACK_AUC = 0.55
# Share of the logical CPUs that other processes may keep busy on average before the page
# flags the timings.
HIGH_OTHER_CPU_SHARE = 0.25
LSCPU_FIELDS = (
    "Model name",
    "CPU(s)",
    "Thread(s) per core",
    "Core(s) per socket",
    "L2 cache",
    "L3 cache",
    "Hypervisor vendor",
)


def load_runs(results_dir: Path) -> pd.DataFrame:
    records = []
    for path in sorted(results_dir.glob("*.jsonl")):
        records.extend(json.loads(line) for line in path.read_text().splitlines() if line)
    if not records:
        raise FileNotFoundError(f"No run records (*.jsonl) found in {results_dir}.")
    runs = pd.DataFrame.from_records(records)
    return add_pipeline_accounting(runs)


def add_pipeline_accounting(runs: pd.DataFrame) -> pd.DataFrame:
    """Fill in PLD and RDP epsilon for runs whose library did not use dp_accounting.

    The Opacus runs carry Opacus's PRV epsilon. The same sampling rate, noise multiplier
    and step count go through the pipeline's PLD and RDP accountants, so both sides are
    judged by one accountant.
    """
    runs = runs.copy()
    for column in ("epsilon_pld", "epsilon_rdp"):
        if column not in runs:
            runs[column] = math.nan
    cache: dict[tuple, tuple[float, float]] = {}
    for index, run in runs.iterrows():
        if run["configuration"] != "dp" or not math.isnan(run["epsilon_pld"]):
            continue
        key = (
            run["sampling_probability"],
            run["noise_multiplier"],
            int(run["steps"]),
            run["delta"],
        )
        if key not in cache:
            cache[key] = (privacy.epsilon_pld(*key), privacy.epsilon_rdp(*key))
        runs.loc[index, ["epsilon_pld", "epsilon_rdp"]] = cache[key]
    return runs


def configuration_label(target_epsilon) -> str:
    return "non-private" if pd.isna(target_epsilon) else f"{target_epsilon:g}"


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Return mean, standard deviation and seed count per side and configuration."""
    runs = runs.assign(epsilon_key=runs["target_epsilon"].fillna(math.inf))
    grouped = runs.groupby(["side", "epsilon_key"])
    summary = grouped[list(METRICS)].agg(["mean", "std", "count"])
    return summary


def cell(summary, side: str, epsilon_key: float, metric: str) -> str:
    digits = METRICS[metric][1]
    try:
        row = summary.loc[(side, epsilon_key), metric]
    except KeyError:
        return "n/a"
    std = 0.0 if pd.isna(row["std"]) else row["std"]
    return f"{row['mean']:.{digits}f} ± {std:.{digits}f}"


def mean(summary, side: str, epsilon_key: float, metric: str) -> float:
    try:
        return float(summary.loc[(side, epsilon_key), (metric, "mean")])
    except KeyError:
        return math.nan


def results_table(summary, epsilon_keys) -> list[str]:
    header = ["epsilon"]
    for label, _ in METRICS.values():
        header += [f"{label}: ours", "Opacus"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for epsilon_key in epsilon_keys:
        row = [configuration_label(None if math.isinf(epsilon_key) else epsilon_key)]
        for metric in METRICS:
            row += [cell(summary, side, epsilon_key, metric) for side in SIDES]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def accounting_table(runs: pd.DataFrame) -> list[str]:
    dp_runs = runs[runs["configuration"] == "dp"]
    first = dp_runs.groupby(["target_epsilon", "side"]).first()
    header = [
        "target epsilon",
        "ours: sigma",
        "q",
        "steps",
        "PLD epsilon",
        "RDP epsilon",
        "Opacus: sigma",
        "q",
        "steps",
        "PRV epsilon (Opacus)",
        "PLD epsilon",
        "RDP epsilon",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for target_epsilon in sorted(dp_runs["target_epsilon"].unique()):
        row = [f"{target_epsilon:g}"]
        for side in SIDES:
            if (target_epsilon, side) not in first.index:
                row += ["n/a"] * (4 if side == "tensorflow-privacy" else 5)
                continue
            run = first.loc[(target_epsilon, side)]
            row += [
                f"{run['noise_multiplier']:.4f}",
                f"{run['sampling_probability']:.6f}",
                f"{int(run['steps'])}",
            ]
            if side == "opacus":
                row.append(f"{run['epsilon_library']:.4f}")
            row += [f"{run['epsilon_pld']:.4f}", f"{run['epsilon_rdp']:.4f}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def check_targets(summary) -> list[dict]:
    """Compare the means of the epsilon-1 runs with the targets.

    Each entry contains the target's wording, the measured numbers and whether it is met.
    """
    ours, peer = "tensorflow-privacy", "opacus"

    accuracy = mean(summary, ours, TARGET_EPSILON, "test_accuracy")
    baseline_accuracy = mean(summary, ours, math.inf, "test_accuracy")
    gap = baseline_accuracy - accuracy

    seconds = mean(summary, ours, TARGET_EPSILON, "train_seconds")
    baseline_seconds = mean(summary, ours, math.inf, "train_seconds")
    ratio = seconds / baseline_seconds
    peer_seconds = mean(summary, peer, TARGET_EPSILON, "train_seconds")
    peer_ratio = peer_seconds / mean(summary, peer, math.inf, "train_seconds")

    peer_accuracy = mean(summary, peer, TARGET_EPSILON, "test_accuracy")
    attack = mean(summary, ours, TARGET_EPSILON, "attack_auc")
    peer_attack = mean(summary, peer, TARGET_EPSILON, "attack_auc")
    return [
        {
            "target": f"test accuracy ≥ {MIN_ACCURACY}",
            "measured": f"{accuracy:.4f}",
            "met": accuracy >= MIN_ACCURACY,
        },
        {
            "target": "at most 1 percentage point below the non-private baseline of the same run",
            "measured": f"baseline {baseline_accuracy:.4f}, gap {100 * gap:.2f} points",
            "met": gap <= MAX_ACCURACY_GAP,
        },
        {
            "target": f"DP training time at most {MAX_TIME_RATIO:g} × the baseline's",
            "measured": f"{seconds:.1f} s / {baseline_seconds:.1f} s = {ratio:.2f} × "
            f"(Opacus: {peer_ratio:.2f} ×)",
            "met": ratio <= MAX_TIME_RATIO,
        },
        {
            "target": "no slower than Opacus (mean training time)",
            "measured": f"{seconds:.1f} s against {peer_seconds:.1f} s",
            "met": seconds <= peer_seconds,
        },
        {
            "target": "no less accurate than Opacus (mean test accuracy)",
            "measured": f"{accuracy:.4f} against {peer_accuracy:.4f}",
            "met": accuracy >= peer_accuracy,
        },
        {
            "target": f"membership-inference attack AUC ≤ {MAX_ATTACK_AUC}",
            "measured": f"{attack:.4f} (Opacus: {peer_attack:.4f})",
            "met": attack <= MAX_ATTACK_AUC,
        },
    ]


def targets_table(checks: list[dict]) -> list[str]:
    lines = ["| target | measured (mean over seeds) | met |", "| --- | --- | --- |"]
    for check in checks:
        verdict = "yes" if check["met"] else "**no**"
        lines.append(f"| {check['target']} | {check['measured']} | {verdict} |")
    return lines


def plot(summary, epsilon_values: list[float], path: Path) -> None:
    """Draw test accuracy and training time against epsilon, with the baselines as lines."""
    figure, (accuracy_axis, time_axis) = plt.subplots(1, 2, figsize=(11, 4.2))

    styles = {"tensorflow-privacy": ("tab:blue", "o"), "opacus": ("tab:orange", "s")}
    for axis, metric in ((accuracy_axis, "test_accuracy"), (time_axis, "train_seconds")):
        for side, label in SIDES.items():
            color, marker = styles[side]
            means = [mean(summary, side, value, metric) for value in epsilon_values]
            stds = [summary.loc[(side, value), (metric, "std")] for value in epsilon_values]
            axis.errorbar(
                epsilon_values, means, yerr=stds, color=color, marker=marker, capsize=3,
                label=f"{label}, DP",
            )  # fmt: skip
            baseline = mean(summary, side, math.inf, metric)
            axis.axhline(
                baseline, color=color, linestyle="--", linewidth=1, label=f"{label}, non-private"
            )
        axis.set_xscale("log", base=2)
        axis.set_xticks(epsilon_values, [f"{value:g}" for value in epsilon_values])
        axis.set_xlabel("target epsilon (delta = 1e-5)")
        axis.grid(alpha=0.3)

    accuracy_axis.axhline(
        MIN_ACCURACY, color="grey", linestyle=":", linewidth=1, label=f"target {MIN_ACCURACY}"
    )
    accuracy_axis.set_ylabel("test accuracy (adult.test)")
    accuracy_axis.set_title("Accuracy, mean ± std over seeds")
    time_axis.set_ylabel("training wall time (s)")
    time_axis.set_ylim(bottom=0)
    time_axis.set_title("Training time, mean ± std over seeds")

    # One legend below both panels, so that no curve is hidden behind it.
    handles, labels = accuracy_axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=5, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


def machine_lines(machine: dict, runs: pd.DataFrame) -> list[str]:
    """Describe the CPU, memory, thread variables and library versions as Markdown items."""
    lscpu = dict(
        (line.split(":", 1)[0].strip(), line.split(":", 1)[1].strip())
        for line in machine["lscpu"].splitlines()
        if ":" in line
    )
    cpu = ", ".join(f"{name} {lscpu[name]}" for name in LSCPU_FIELDS if name in lscpu)
    lines = [
        f"- CPU (`lscpu`): {cpu}. No GPU. Memory {machine['memory_gib']} GiB, Linux "
        f"{machine['kernel']}, Python {machine['python']}.",
    ]

    set_variables = {k: v for k, v in machine["thread_environment"].items() if v is not None}
    listed = ", ".join(f"`{k}={v}`" for k, v in set_variables.items()) or "none"
    lines.append(f"- Thread variables set: {listed}.")

    for side, label in SIDES.items():
        side_runs = runs[runs["side"] == side]
        if side_runs.empty:
            continue
        first = side_runs.iloc[0]
        versions = ", ".join(f"{name} {version}" for name, version in first["versions"].items())
        threads = (
            f"intra-op threads {first['intra_op_threads']}, inter-op threads "
            f"{first['inter_op_threads']}"
        )
        if side == "tensorflow-privacy" and first["intra_op_threads"] == 0:
            threads += " (0: TensorFlow picks one per logical CPU)"
        lines.append(f"- {label}: {versions}; {threads}.")
    return lines


def load_lines(machine: dict, runs: pd.DataFrame, uptime: str) -> list[str]:
    """Describe the load during the run and flag the timings if other processes were busy."""
    lines = [
        "- Load average (`uptime`) during the run, which counts the benchmark's own busy "
        "thread as well:"
    ]
    lines += [f"  - `{line}`" for line in uptime.strip().splitlines()]

    for side, label in SIDES.items():
        side_runs = runs[runs["side"] == side]
        if side_runs.empty:
            continue
        other = side_runs["other_cores"]
        lines.append(
            f"- Other processes' CPU use during the timed {label} runs: {other.mean():.2f} "
            f"cores on average, {other.max():.2f} at most (from /proc/stat minus the "
            "benchmark's own CPU time)."
        )

    cpus = machine["logical_cpus"]
    threshold = HIGH_OTHER_CPU_SHARE * cpus
    busiest = runs["other_cores"].mean()
    if busiest > threshold:
        lines.append(
            f"- **Warning:** other processes kept {busiest:.2f} of the {cpus} logical CPUs "
            "busy on average, so the times above are slower and noisier than on an idle "
            "machine."
        )
    else:
        lines.append(
            f"- Other processes kept {busiest:.2f} cores busy on average, under the "
            f"{threshold:g} above which this page flags the timings."
        )
    return lines


def generated_section(arguments, runs: pd.DataFrame) -> str:
    summary = summarise(runs)
    epsilon_values = sorted(runs["target_epsilon"].dropna().unique())
    epsilon_keys = [math.inf, *epsilon_values]
    data = json.loads(arguments.data_summary.read_text())
    machine = json.loads(arguments.machine.read_text())
    seeds = sorted(runs["seed"].unique())
    finished = datetime.datetime.now(datetime.UTC)
    total_minutes = (finished.timestamp() - arguments.started_at) / 60
    setup_seconds = arguments.runs_started_at - arguments.started_at
    first = runs.iloc[0]

    plot(summary, epsilon_values, arguments.docs / "privacy.png")
    lines = [
        BEGIN_MARKER,
        "",
        "## Results",
        "",
        f"Run finished {finished:%Y-%m-%d %H:%M} UTC with `{arguments.command}`: "
        f"{len(seeds)} seed(s) ({', '.join(str(s) for s in seeds)}) per configuration and side, "
        f"{len(runs)} training runs, {total_minutes:.1f} minutes in all, of which "
        f"{setup_seconds:.0f} s went to creating or checking the environments and encoding "
        "the data.",
        "",
        f"Training data: {data['rows']['train']} rows of adult.data (validation "
        f"{data['rows']['validation']}, split seed {data['split_seed']}), test "
        f"{data['rows']['test']} rows of adult.test, {data['features']} encoded features. "
        "Source files match the UCI release: "
        + ", ".join(
            f"{name} {'yes' if source['matches_uci_release'] else '**no**'}"
            for name, source in data["sources"].items()
        )
        + ".",
        "",
        f"DP runs: {int(first['epochs'])} epochs, expected batch size "
        f"{runs['expected_batch_size'].median():g}, Adam learning rate "
        f"{runs.loc[runs['configuration'] == 'dp', 'learning_rate'].iloc[0]:g}, clipping norm "
        f"{runs.loc[runs['configuration'] == 'dp', 'l2_norm_clip'].iloc[0]:g}, delta "
        f"{first['delta']:g}. Baselines: learning rate "
        f"{runs.loc[runs['configuration'] == 'baseline', 'learning_rate'].iloc[0]:g}.",
        "",
        f"### Targets at epsilon = {TARGET_EPSILON:g}",
        "",
        *targets_table(check_targets(summary)),
        "",
        "### Utility, audit and training time",
        "",
        f"Mean ± sample standard deviation over {len(seeds)} seed(s). Training time is wall "
        "time. CPU time is the training process's user and system time over the same span, "
        "which other processes' load changes less.",
        "",
        *results_table(summary, epsilon_keys),
        "",
        "![Test accuracy and training time against epsilon](privacy.png)",
        "",
        "### Noise multipliers and accounting",
        "",
        *accounting_table(runs),
        "",
        "### Machine and load",
        "",
        *machine_lines(machine, runs),
        *load_lines(machine, runs, arguments.uptime.read_text()),
        "",
        "Per-run results: [privacy-runs.csv](privacy-runs.csv) and "
        "[privacy-runs.json](privacy-runs.json).",
        "",
        END_MARKER,
    ]
    return "\n".join(lines)


def write_raw(runs: pd.DataFrame, arguments) -> None:
    machine = json.loads(arguments.machine.read_text())
    data = json.loads(arguments.data_summary.read_text())
    for source in data["sources"].values():
        source["path"] = Path(source["path"]).name
    document = {
        "machine": {key: value for key, value in machine.items() if key != "lscpu"},
        "data": data,
        "runs": json.loads(runs.drop(columns=["pid"]).to_json(orient="records")),
    }
    (arguments.docs / "privacy-runs.json").write_text(json.dumps(document, indent=1) + "\n")
    flat = runs.drop(columns=["pid", "versions"])
    flat.to_csv(arguments.docs / "privacy-runs.csv", index=False, float_format="%.6g")


def replace_section(page: Path, section: str) -> None:
    text = page.read_text()
    if BEGIN_MARKER not in text or END_MARKER not in text:
        raise ValueError(
            f"{page} has no generated section. Add the lines {BEGIN_MARKER!r} and "
            f"{END_MARKER!r} where the results should go."
        )
    before, rest = text.split(BEGIN_MARKER, 1)
    after = rest.split(END_MARKER, 1)[1]
    page.write_text(before + section + after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="Folder of *.jsonl runs.")
    parser.add_argument("--data-summary", type=Path, required=True)
    parser.add_argument("--machine", type=Path, required=True)
    parser.add_argument("--uptime", type=Path, required=True, help="Lines of `uptime` output.")
    parser.add_argument("--docs", type=Path, required=True, help="Folder of privacy.md.")
    parser.add_argument(
        "--started-at", type=float, required=True, help="Unix time in s when run.sh started."
    )
    parser.add_argument(
        "--runs-started-at",
        type=float,
        required=True,
        help="Unix time in s when the first training process started.",
    )
    parser.add_argument("--command", default="make bench-privacy")
    arguments = parser.parse_args()

    runs = load_runs(arguments.results)
    section = generated_section(arguments, runs)
    replace_section(arguments.docs / "privacy.md", section)
    write_raw(runs, arguments)
    print(section)


if __name__ == "__main__":
    main()
