"""The methods paragraph of a report, written from provenance alone.

Every number and name in the text is read from the record it describes (a ``Results``' provenance, a
cross-validation's, a comparison's settings and its inputs' provenance); what a record lacks is said
to be "not recorded", never filled in. Citations are pandoc keys ``[@key]`` (:mod:`.bibliography`).
"""

from __future__ import annotations

from typing import Any

from ..metrics.conventions import CONVENTION_SPECS
from .bibliography import CONVENTION_PAPERS, CORRECTION_PAPERS, METRIC_PAPERS, PACKAGE_KEY, TEST_PAPERS
from .multiple import CORRECTION_NAMES
from .tables import TEST_ASSUMPTIONS, TEST_NAMES, ZERO_METHODS

_BOUNDARIES = {"surfels": "sit on the pixel-corner lattice, each weighted by its contour length",
               "edge-pixels": "are edge pixels (a mask minus its 4-neighbour erosion), each weighted 1"}
_PERCENTILES = {
    "per-direction-weighted": "in each direction the smallest distance whose cumulative contour-length share reaches "
                              "the percentile, the larger of the two directions",
    "per-direction-linear-float32": "in each direction a linearly interpolated percentile of the float32 distances, "
                                    "the larger of the two directions",
    "pooled-linear": "one linearly interpolated percentile of the distances of both directions pooled",
}
NOT_RECORDED = "not recorded"


def _cite(*keys: str | None) -> str:
    keys = tuple(k for k in keys if k)
    return f" [{'; '.join('@' + k for k in keys)}]" if keys else ""


def _num(value: Any) -> str:
    return NOT_RECORDED if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _connected(connectivity: Any) -> str:
    return f"{connectivity}-connected" if connectivity is not None else f"(connectivity {NOT_RECORDED})"


def metric_definition(metric: str, record: dict[str, Any]) -> str:
    """One metric's exact definition under the recorded convention, percentile, tolerance and spacing.

    Examples
    --------
    >>> metric_definition("iou", {})
    'intersection over union (Jaccard index), |P∩G| / |P∪G| [@jaccard1912]'
    """
    spec = CONVENTION_SPECS.get(record.get("convention") or "")
    weight = "contour length" if spec and spec.boundary == "surfels" else "edge pixels" if spec else "boundary weight"
    unit = record.get("spacing_unit") or NOT_RECORDED
    p = record.get("percentile")
    topology = record.get("topology_options") or {}
    text = {
        "dice": "Dice similarity coefficient, 2|P∩G| / (|P| + |G|) of the predicted (P) and ground-truth (G) pixels "
                "of a class",
        "iou": "intersection over union (Jaccard index), |P∩G| / |P∪G|",
        "precision": "precision, |P∩G| / |P|", "recall": "recall (sensitivity), |P∩G| / |G|",
        "specificity": "specificity, |P'∩G'| / |G'| (primes: complements)",
        "hausdorff": "Hausdorff distance (HD), the larger of the two directed maximum distances between the "
                     "boundaries of P and G",
        "hd95": f"{_num(p)}th-percentile Hausdorff distance (HD{_num(p)}), "
                + (_PERCENTILES[spec.percentile] if spec else "as the convention defines it"),
        "assd": "average symmetric surface distance (ASSD), the mean boundary distance of both directions pooled",
        "masd": "mean average surface distance (MASD), the mean of the two directed mean boundary distances",
        "nsd": f"normalised surface distance (NSD, surface Dice) at a tolerance of {_num(record.get('tolerance'))} "
               f"({unit} units): the {weight} of both boundaries lying within the tolerance of the other boundary, "
               f"over their total {weight}",
        "lesion_recall": "lesion recall, the fraction of ground-truth lesions detected",
        "lesion_precision": "lesion precision, the fraction of predicted objects matching a lesion",
        "lesion_f1": "lesion F1, the harmonic mean of lesion recall and precision",
        "fp_objects": "false-positive objects, predicted connected components touching no lesion",
        "accuracy": "pixel accuracy, (TP + TN) / (TP + FP + FN + TN) of the pixels scored",
        "cldice": "centreline Dice (clDice), 2 Tprec Tsens / (Tprec + Tsens) with Tprec = |S(P)∩G| / |S(P)| and "
                  "Tsens = |S(G)∩P| / |S(G)|, S the skeleton (0 where both are 0)",
        "betti0_error": f"Betti-0 error, |b0(P) - b0(G)|, b0 the number of "
                        f"{_connected(topology.get('foreground_connectivity'))} foreground components",
        "betti1_error": f"Betti-1 error, |b1(P) - b1(G)|, b1 the number of holes "
                        f"({_connected(topology.get('background_connectivity'))} background components not "
                        "reaching the image border)",
        "boundary_iou": "Boundary IoU, the IoU of the inner boundary bands of P and G (a mask minus its erosion by a "
                        "(2d+1) x (2d+1) square, d = max(1, round(r x the image diagonal)) pixels with r = "
                        f"{_num(topology.get('boundary_dilation'))}, the image border counting as contour)",
        "boundary_f1": f"boundary F-score, the harmonic mean of the {weight} shares of each boundary lying within "
                       f"{_num(record.get('tolerance'))} ({unit} units) of the other boundary",
        "mcc": "Matthews correlation coefficient, (TP TN - FP FN) / sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN)); where "
               "the denominator vanishes, 1 if the masks agree everywhere, else 0",
        "kappa": "Cohen's kappa, (p_o - p_e) / (1 - p_e) of the observed and chance pixel agreement; where p_e = 1, "
                 "1 if the masks agree everywhere, else 0",
        "balanced_accuracy": "balanced accuracy, (recall + specificity) / 2",
        "volume_similarity": "volume similarity, 1 - |FN - FP| / (2TP + FP + FN)",
        "object_f1": "object-level F1, 2 TP / (n_P + n_G) over predicted and ground-truth objects, a predicted object "
                     "counting as TP when it covers more than 50% of the ground-truth object it overlaps most",
        "object_dice": "object-level Dice, the mean of the area-weighted Dice of each predicted object with its "
                       "most-overlapped ground-truth object and of each ground-truth object with its most-overlapped "
                       "predicted one (0 without overlap)",
        "object_hausdorff": "object-level Hausdorff distance, the same area-weighted form with the Hausdorff distance "
                            "to the partner object (without overlap: the nearest object)",
        "aji": "aggregated Jaccard index (AJI), the summed intersections over the summed unions of each ground-truth "
               "object and its best-IoU predicted object, the areas of predicted objects never used added to the "
               "unions",
        "pq": "panoptic quality, PQ = SQ x RQ, objects matched at IoU > 0.5",
        "sq": "segmentation quality, the mean IoU of objects matched at IoU > 0.5 (0 without a match)",
        "rq": "recognition quality, TP / (TP + FP/2 + FN/2) of objects matched at IoU > 0.5",
    }.get(metric, f"{metric} (as defined in medseg_eval.metrics)")
    return text + _cite(METRIC_PAPERS.get(metric))


def _empty_policy(policy: dict[str, Any] | None) -> str:
    if not policy:
        return f"Empty masks: policy {NOT_RECORDED}."
    worst = {"diagonal": "the image diagonal in spacing units", "inf": "infinity"}.get(policy.get("worst_distance"),
                                                                                    _num(policy.get("worst_distance")))
    undefined = "is undefined (NaN) and left out of means"
    both = {"best": "scores each metric's best value (overlap 1, distances 0)",
            "nan": undefined}.get(policy.get("both_empty"), _num(policy.get("both_empty")))
    one = {"worst": f"scores the worst value (overlap 0, distances {worst})",
           "nan": undefined}.get(policy.get("one_empty"), _num(policy.get("one_empty")))
    text = (f"Empty masks: a class absent from both prediction and ground truth {both}; one absent from only one of "
            f"them {one}")
    if policy.get("preset") not in (None, "medseg_eval"):
        rules = "; ".join(f"{m} with {s.replace('_', ' ')}: {o}" for m, s, o in policy.get("rules") or [])
        text += f" (the {policy['preset']} preset" + (f", with the rules {rules}" if rules else "") + ")"
    return text + "."


def _topology(options: dict[str, Any] | None) -> str:
    if not options:
        return ""
    return (f" Topology: {_connected(options.get('foreground_connectivity'))} foreground and "
            f"{_connected(options.get('background_connectivity'))} background; Boundary IoU band "
            f"{_num(options.get('boundary_dilation'))} of the image diagonal; skeletons by "
            f"{_num(options.get('skeleton'))}.")


def _instances(record: dict[str, Any] | None) -> str:
    if not record:
        return ""
    source = record.get("instances_from")
    predicted = ("the predicted instance maps (each id one object)" if source == "predictions"
                 else f"the {_connected(record.get('connectivity'))} components of class 1 of the predicted "
                      "label maps (touching objects merge)" if source == "connected_components"
                 else _num(source))
    return f" Objects of the instance metrics: ground truth, the dataset's instance ids; predictions, {predicted}."


def _lesions(criteria: dict[str, Any] | None) -> str:
    if not criteria:
        return ""
    if criteria.get("criterion") == "iou":
        detected = f"a predicted component matches it with IoU of at least {_num(criteria.get('iou_threshold'))}"
    else:
        share = criteria.get("min_overlap")
        detected = ("the prediction overlaps it (any overlap)" if share == 0
                    else f"the prediction covers at least {_num(share)} of its area")
    return (f" Lesions are the {_num(criteria.get('connectivity'))}-connected components of each ground-truth class; "
            f"a lesion counts as detected when {detected}.")


def scoring(record: dict[str, Any], dataset_key: str | None = None) -> str:
    """Sentences on the data, metrics, convention, spacing, empty masks, lesions, topology options and instance
    objects (``dataset_key``: its citation)."""
    dataset = record.get("dataset")
    cases = _num(record.get("num_cases"))
    if dataset:
        data = (f"against the canonical ground truth of {dataset}{_cite(dataset_key)} (revision "
                f"{_num(record.get('dataset_revision'))}; split manifest SHA-256 "
                f"{_num(record.get('manifest_sha256'))}), {_num(record.get('split'))} split")
    else:
        data = "against the authors' own ground truth" + (f" ({cases} cases" if record.get("num_cases") else " (") \
            + f"; SHA-256 {_num(record.get('targets_sha256'))})"
    if record.get("folds") is not None:
        data += (f", held-out folds {', '.join(map(str, record['folds']))}"
                 + (f" of training seeds {', '.join(map(str, record['seeds']))}" if record.get("seeds") != [None]
                    else ""))
    elif dataset and record.get("num_cases") is not None:
        data += f" ({cases} cases)"
    metrics = record.get("metrics") or []
    text = (f"Segmentations were scored with medseg_eval {_num(record.get('package_version'))}{_cite(PACKAGE_KEY)} "
            f"{data}. Metrics, per case and foreground class: "
            + ("; ".join(metric_definition(m, record) for m in metrics) or NOT_RECORDED) + ".")
    convention = record.get("convention")
    spec = CONVENTION_SPECS.get(convention or "")
    if any(m in ("hausdorff", "hd95", "assd", "masd", "nsd", "boundary_f1") for m in metrics) or not metrics:
        text += (f" Boundary distances follow the {_num(convention)} convention, which reproduces "
                 f"{_num(record.get('convention_reproduces'))} exactly{_cite(CONVENTION_PAPERS.get(convention or ''))}"
                 + (f": boundary elements {_BOUNDARIES[spec.boundary]}, and distances are exact Euclidean "
                    f"distances computed in {spec.distance_dtype}" if spec else "")
                 + f"; percentile {_num(record.get('percentile'))}, NSD tolerance {_num(record.get('tolerance'))}.")
    text += f" Distances are in {_num(record.get('spacing_unit'))} units. " + _empty_policy(record.get("empty_policy"))
    return (text + _lesions(record.get("lesion_criteria")) + _topology(record.get("topology_options"))
            + _instances(record.get("instances")))


def results_aggregation(record: dict[str, Any], *, confidence: float, n_boot: int, seed: int) -> str:
    """How a Results' summary aggregates, and its CI."""
    pooled = [m for m in record.get("metrics") or [] if m in ("dice", "iou", "lesion_recall")]
    return (" Per class, values are summarised by their mean over cases (with sd, median and quartiles); NaN values "
            "are left out and counted" + (f"; {', '.join(pooled)} are also pooled over the split (pixel or lesion "
                                           "counts summed over cases before the ratio)" if pooled else "")
            + f". Confidence intervals are {round(100 * confidence)}% percentile-bootstrap intervals of the mean from "
            f"{n_boot} resamples of the cases (NumPy default_rng, seed {seed}){_cite('efron1993')}.")


def cv_aggregation(record: dict[str, Any], *, confidence: float, n_boot: int, seed: int, resample: str) -> str:
    """How a cross-validation's summary aggregates over folds and seeds, and its two-stage bootstrap CI."""
    folds, seeds = record.get("folds") or [], [s for s in record.get("seeds") or [] if s is not None]
    over = f"the {len(folds)} folds" + (f" of each of the {len(seeds)} seeds" if len(seeds) > 1 else "")
    stage = "seeds (every fold of a drawn seed kept)" if resample == "seeds" else "folds"
    return (f" Folds: {_num(record.get('coverage'))}; held-out folds are disjoint. Each fold is summarised by its "
            f"per-case mean (and, for Dice and IoU, its pooled value); we report the mean ± sd (ddof 1), minimum and "
            f"maximum over {over}, and the statistic of all held-out cases pooled. Confidence intervals are "
            f"{round(100 * confidence)}% percentile intervals of the mean over folds from a two-stage bootstrap: "
            f"{stage} drawn with replacement, then the cases within each drawn fold, {n_boot} resamples (NumPy "
            f"default_rng, seed {seed}){_cite('davison1997')}.")


def comparison_methods(settings: dict[str, Any]) -> str:
    """The tests, corrections, CIs and rankings of a comparison, from its settings."""
    tests = settings.get("tests") or []
    k = len(settings.get("models") or [])
    blocks = settings.get("blocks", "case")
    unit = {"case": "cases (paired by case id)", "dataset": "datasets",
            "fold": "folds (each model's mean over a fold's held-out cases; seeds paired by order)",
            "seed": "seeds (each model's mean over a seed's held-out cases)"}
    names = [TEST_NAMES.get(t, t) + (f" ({ZERO_METHODS[settings['zero_method']]})" if t == "wilcoxon"
                                     and settings.get("zero_method") in ZERO_METHODS else "")
             + _cite(TEST_PAPERS.get(t)) for t in tests]
    correction = settings.get("correction")
    text = (f" The {k} models ({', '.join(settings.get('models') or [])}) were compared on "
            f"{', '.join(settings.get('metrics') or [])} with blocks of {unit.get(blocks, blocks)}: two-sided "
            f"{' and '.join(names)}; the first test assumes independent blocks with "
            f"{TEST_ASSUMPTIONS.get(tests[0], NOT_RECORDED) if tests else NOT_RECORDED}. p-values were corrected with "
            f"the {CORRECTION_NAMES.get(correction, _num(correction))} procedure"
            f"{_cite(CORRECTION_PAPERS.get(correction or ''))} over the {k * (k - 1) // 2} pairs of each metric and "
            f"class, at alpha = {_num(settings.get('alpha'))}.")
    if "permutation" in tests:
        text += (f" The permutation test draws {_num(settings.get('n_permutations'))} random sign flips (seed "
                 f"{_num(settings.get('seed'))}) when the signs cannot all be enumerated.")
    if blocks in ("fold", "seed"):
        text += f" Folds share training data, so the blocks are not independent{_cite('nadeau2003')}."
    if k >= 3:
        text += (f" Friedman's test with Iman-Davenport's F, and Nemenyi's and Conover's post-hoc tests"
                 f"{_cite('friedman1937', 'demsar2006')}.")
    policy = {"error": "every model was scored on every case", "worst": "cases a model lacks were given the metric's "
              "worst value", "drop": "cases any model lacks were left out"}.get(settings.get("missing_policy"),
                                                                                NOT_RECORDED)
    return text + (f" Missing cases: {policy}. Each model's mean and the paired mean and median differences have "
                   f"{round(100 * settings.get('confidence', 0.95))}% percentile-bootstrap CIs from "
                   f"{_num(settings.get('n_boot'))} resamples of the blocks (seed {_num(settings.get('seed'))})"
                   f"{_cite('efron1993')}; rank stability ({_num(settings.get('stability_scheme'))}) from "
                   f"{_num(settings.get('n_rank_boot'))} bootstrap samples, with Kendall's tau to the full ranking.")
