"""Statistics for papers: paired tests, multiple comparisons, rankings with uncertainty, tables and figures.

Start from :func:`medseg_eval.compare`; the functions here are its parts, usable on their own.
"""

from .compare import Comparison, compare
from .crossval import (
    CrossValidation,
    CrossValidationError,
    FoldCoverageError,
    MixedSettingsError,
    OverlappingFoldsError,
    cross_validation,
    load_run,
    load_runs,
)
from .friedman import (
    FriedmanResult,
    cliques,
    conover,
    critical_difference,
    friedman,
    nemenyi,
    nemenyi_q,
    pairwise_tests,
    versus_control,
)
from .multiple import adjust_p
from .paired import TestResult, bootstrap_ci, cohen_dz, paired_t, permutation_test, rank_biserial, wilcoxon
from .pairing import (
    DroppedCasesWarning,
    DuplicateCaseError,
    PairedValues,
    PairingError,
    UnpairedCasesError,
    higher_is_better,
    paired_values,
    per_case_table,
)
from .ranking import SCHEMES, RankStability, rank_models, rank_stability
from .report import Report, ReportError, report

__all__ = [
    "SCHEMES",
    "Comparison",
    "CrossValidation",
    "CrossValidationError",
    "DroppedCasesWarning",
    "DuplicateCaseError",
    "FoldCoverageError",
    "FriedmanResult",
    "MixedSettingsError",
    "OverlappingFoldsError",
    "PairedValues",
    "PairingError",
    "RankStability",
    "Report",
    "ReportError",
    "TestResult",
    "UnpairedCasesError",
    "adjust_p",
    "bootstrap_ci",
    "cliques",
    "cohen_dz",
    "compare",
    "conover",
    "critical_difference",
    "cross_validation",
    "friedman",
    "higher_is_better",
    "load_run",
    "load_runs",
    "nemenyi",
    "nemenyi_q",
    "paired_t",
    "paired_values",
    "pairwise_tests",
    "per_case_table",
    "permutation_test",
    "rank_biserial",
    "rank_models",
    "rank_stability",
    "report",
    "versus_control",
    "wilcoxon",
]
