"""How many generated faces the fairness gates need, and why the correction uses probabilities, not counts.

Against the registered ``facegen-attributes@production`` and its held-out readings at ``--resolution``:
1. the probability that a perfect generator (its faces = held-out real faces of the requested group) passes each
   attribute's default gate with n stratified requests, given the held-out readings and with their own noise;
2. the noise (largest standard deviation over groups) of corrected shares from argmax counts vs from probabilities,
   side by side on the same draws.

    python benchmarks/fairness_sample_size.py --resolution 32

Figures: docs/evaluation.md "How many faces".
"""

from __future__ import annotations

import argparse

import numpy as np

from facegen.attributes import ATTRIBUTE_VALUES
from facegen.attributes_model.registry import load_attribute_classifier
from facegen.attributes_model.scoring import held_out_at
from facegen.gates import DEFAULT_MAX_TV, DEFAULT_MIN_REPRESENTATION_RATIO
from facegen.metrics.fairness_correction import corrected_shares, mean_probabilities, perfect_generator_pass_rate
from facegen.registry.names import ATTRIBUTES_MODEL_NAME
from facegen.registry.tracking import mlflow_client


def count_vs_probability_noise(held_out, groups, n: int, draws: int, rng: np.random.Generator) -> tuple[float, float]:
    members = held_out.by_group(groups)
    one_hot = np.eye(len(groups))[held_out.probabilities.argmax(1)]
    rates = {
        "counts": np.stack([one_hot[m].mean(0) for m in members]),
        "probabilities": mean_probabilities(held_out, members),
    }
    readings = {"counts": one_hot, "probabilities": held_out.probabilities}
    estimates: dict[str, list[np.ndarray]] = {"counts": [], "probabilities": []}
    for _ in range(draws):
        faces = np.concatenate([rng.choice(m, n // len(groups)) for m in members])
        for kind in estimates:
            estimates[kind].append(corrected_shares(readings[kind][faces].mean(0), rates[kind]))
    return tuple(float(np.std(estimates[k], axis=0).max()) for k in ("counts", "probabilities"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000, 20000, 50000])
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    classifier, version = load_attribute_classifier(mlflow_client())
    print(
        f"{ATTRIBUTES_MODEL_NAME} v{version.version} at {args.resolution} px; "
        "perfect-generator pass rate: given the held-out readings / with their noise"
    )
    rng = np.random.default_rng(0)
    for attribute, groups in ATTRIBUTE_VALUES.items():
        held_out = held_out_at(classifier.spec, args.resolution, attribute, model=ATTRIBUTES_MODEL_NAME)
        target = {g: 1 / len(groups) for g in groups}
        rates = [
            "n={:,}: {:.2f} / {:.2f}".format(
                n,
                *(
                    perfect_generator_pass_rate(
                        held_out,
                        groups,
                        target,
                        n,
                        max_tv=DEFAULT_MAX_TV[attribute],
                        min_ratio=DEFAULT_MIN_REPRESENTATION_RATIO,
                        draws=args.draws,
                        calibration_noise=noise,
                    )
                    for noise in (False, True)
                ),
            )
            for n in args.sizes
        ]
        print(f"{attribute:<10} " + " | ".join(rates))
        for n in (10000, 20000):
            counts, probabilities = count_vs_probability_noise(held_out, list(groups), n, args.draws, rng)
            print(
                f"{'':<10} n={n:,}: largest share SD from counts {counts:.4f}, from probabilities "
                f"{probabilities:.4f} (ratio {counts / probabilities:.2f})"
            )


if __name__ == "__main__":
    main()
