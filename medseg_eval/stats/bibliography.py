"""BibTeX entries a report cites: the package, the dataset (from its registry entry), the metrics' and the tests' papers.

Keys are cited in the methods paragraph as ``[@key]`` (pandoc's syntax); :func:`entries` returns the
BibTeX of the keys cited, in citation order.
"""

from __future__ import annotations

import re

#: The package's own key; its entry carries the version the provenance records.
PACKAGE_KEY = "medseg_eval"
PACKAGE_URL = "https://github.com/medseg-eval/medseg_eval"

#: Papers and software the methods paragraph cites.
REFERENCES: dict[str, str] = {
    "dice1945": """@article{dice1945,
  author = {Dice, Lee R.},
  title = {Measures of the Amount of Ecologic Association Between Species},
  journal = {Ecology}, volume = {26}, number = {3}, pages = {297--302}, year = {1945},
  doi = {10.2307/1932409}
}""",
    "jaccard1912": """@article{jaccard1912,
  author = {Jaccard, Paul},
  title = {The Distribution of the Flora in the Alpine Zone},
  journal = {New Phytologist}, volume = {11}, number = {2}, pages = {37--50}, year = {1912},
  doi = {10.1111/j.1469-8137.1912.tb05611.x}
}""",
    "huttenlocher1993": """@article{huttenlocher1993,
  author = {Huttenlocher, Daniel P. and Klanderman, Gregory A. and Rucklidge, William J.},
  title = {Comparing Images Using the {Hausdorff} Distance},
  journal = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  volume = {15}, number = {9}, pages = {850--863}, year = {1993}, doi = {10.1109/34.232073}
}""",
    "nikolov2021": """@article{nikolov2021,
  author = {Nikolov, Stanislav and Blackwell, Sam and Zverovitch, Alexei and others},
  title = {Clinically Applicable Segmentation of Head and Neck Anatomy for Radiotherapy: Deep Learning Algorithm
           Development and Validation Study},
  journal = {Journal of Medical Internet Research}, volume = {23}, number = {7}, pages = {e26151}, year = {2021},
  doi = {10.2196/26151}
}""",
    "maierhein2024": """@article{maierhein2024,
  author = {Maier-Hein, Lena and Reinke, Annika and Godau, Patrick and others},
  title = {Metrics Reloaded: Recommendations for Image Analysis Validation},
  journal = {Nature Methods}, volume = {21}, pages = {195--212}, year = {2024}, doi = {10.1038/s41592-023-02151-z}
}""",
    "cardoso2022monai": """@article{cardoso2022monai,
  author = {Cardoso, M. Jorge and Li, Wenqi and Brown, Richard and others},
  title = {{MONAI}: An Open-Source Framework for Deep Learning in Healthcare},
  journal = {arXiv preprint arXiv:2211.02701}, year = {2022}
}""",
    "surface_distance": """@software{surface_distance,
  author = {{DeepMind}},
  title = {surface-distance: Library to Compute Surface Distance Based Performance Metrics for Segmentation Tasks},
  url = {https://github.com/google-deepmind/surface-distance}
}""",
    "medpy": """@software{medpy,
  author = {Maier, Oskar},
  title = {{MedPy}: Medical Image Processing in {Python}},
  url = {https://github.com/loli/medpy}
}""",
    "efron1993": """@book{efron1993,
  author = {Efron, Bradley and Tibshirani, Robert J.},
  title = {An Introduction to the Bootstrap}, publisher = {Chapman \\& Hall}, year = {1993}
}""",
    "davison1997": """@book{davison1997,
  author = {Davison, Anthony C. and Hinkley, David V.},
  title = {Bootstrap Methods and their Application}, publisher = {Cambridge University Press}, year = {1997}
}""",
    "nadeau2003": """@article{nadeau2003,
  author = {Nadeau, Claude and Bengio, Yoshua},
  title = {Inference for the Generalization Error},
  journal = {Machine Learning}, volume = {52}, number = {3}, pages = {239--281}, year = {2003}
}""",
    "wilcoxon1945": """@article{wilcoxon1945,
  author = {Wilcoxon, Frank},
  title = {Individual Comparisons by Ranking Methods},
  journal = {Biometrics Bulletin}, volume = {1}, number = {6}, pages = {80--83}, year = {1945}
}""",
    "student1908": """@article{student1908,
  author = {{Student}},
  title = {The Probable Error of a Mean},
  journal = {Biometrika}, volume = {6}, number = {1}, pages = {1--25}, year = {1908}
}""",
    "good2005": """@book{good2005,
  author = {Good, Phillip I.},
  title = {Permutation, Parametric, and Bootstrap Tests of Hypotheses}, publisher = {Springer}, edition = {3},
  year = {2005}
}""",
    "holm1979": """@article{holm1979,
  author = {Holm, Sture},
  title = {A Simple Sequentially Rejective Multiple Test Procedure},
  journal = {Scandinavian Journal of Statistics}, volume = {6}, number = {2}, pages = {65--70}, year = {1979}
}""",
    "benjamini1995": """@article{benjamini1995,
  author = {Benjamini, Yoav and Hochberg, Yosef},
  title = {Controlling the False Discovery Rate: A Practical and Powerful Approach to Multiple Testing},
  journal = {Journal of the Royal Statistical Society: Series B}, volume = {57}, number = {1}, pages = {289--300},
  year = {1995}
}""",
    "dunn1961": """@article{dunn1961,
  author = {Dunn, Olive Jean},
  title = {Multiple Comparisons Among Means},
  journal = {Journal of the American Statistical Association}, volume = {56}, number = {293}, pages = {52--64},
  year = {1961}
}""",
    "friedman1937": """@article{friedman1937,
  author = {Friedman, Milton},
  title = {The Use of Ranks to Avoid the Assumption of Normality Implicit in the Analysis of Variance},
  journal = {Journal of the American Statistical Association}, volume = {32}, number = {200}, pages = {675--701},
  year = {1937}
}""",
    "demsar2006": """@article{demsar2006,
  author = {Dem{\\v{s}}ar, Janez},
  title = {Statistical Comparisons of Classifiers over Multiple Data Sets},
  journal = {Journal of Machine Learning Research}, volume = {7}, pages = {1--30}, year = {2006}
}""",
    "shit2021cldice": """@inproceedings{shit2021cldice,
  author = {Shit, Suprosanna and Paetzold, Johannes C. and Sekuboyina, Anjany and others},
  title = {{clDice} -- a Novel Topology-Preserving Loss Function for Tubular Structure Segmentation},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages = {16560--16569}, year = {2021}
}""",
    "hu2019topology": """@inproceedings{hu2019topology,
  author = {Hu, Xiaoling and Li, Fuxin and Samaras, Dimitris and Chen, Chao},
  title = {Topology-Preserving Deep Image Segmentation},
  booktitle = {Advances in Neural Information Processing Systems}, volume = {32}, year = {2019}
}""",
    "cheng2021boundary": """@inproceedings{cheng2021boundary,
  author = {Cheng, Bowen and Girshick, Ross and Doll{\\'a}r, Piotr and Berg, Alexander C. and Kirillov, Alexander},
  title = {Boundary {IoU}: Improving Object-Centric Image Segmentation Evaluation},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages = {15334--15342}, year = {2021}
}""",
    "csurka2013": """@inproceedings{csurka2013,
  author = {Csurka, Gabriela and Larlus, Diane and Perronnin, Florent},
  title = {What is a Good Evaluation Measure for Semantic Segmentation?},
  booktitle = {Proceedings of the British Machine Vision Conference (BMVC)}, year = {2013}
}""",
    "matthews1975": """@article{matthews1975,
  author = {Matthews, Brian W.},
  title = {Comparison of the Predicted and Observed Secondary Structure of {T4} Phage Lysozyme},
  journal = {Biochimica et Biophysica Acta (BBA) - Protein Structure}, volume = {405}, number = {2},
  pages = {442--451}, year = {1975}, doi = {10.1016/0005-2795(75)90109-9}
}""",
    "cohen1960": """@article{cohen1960,
  author = {Cohen, Jacob},
  title = {A Coefficient of Agreement for Nominal Scales},
  journal = {Educational and Psychological Measurement}, volume = {20}, number = {1}, pages = {37--46},
  year = {1960}, doi = {10.1177/001316446002000104}
}""",
    "brodersen2010": """@inproceedings{brodersen2010,
  author = {Brodersen, Kay H. and Ong, Cheng Soon and Stephan, Klaas E. and Buhmann, Joachim M.},
  title = {The Balanced Accuracy and Its Posterior Distribution},
  booktitle = {Proceedings of the 20th International Conference on Pattern Recognition (ICPR)},
  pages = {3121--3124}, year = {2010}, doi = {10.1109/ICPR.2010.764}
}""",
    "taha2015": """@article{taha2015,
  author = {Taha, Abdel Aziz and Hanbury, Allan},
  title = {Metrics for Evaluating {3D} Medical Image Segmentation: Analysis, Selection, and Tool},
  journal = {BMC Medical Imaging}, volume = {15}, pages = {29}, year = {2015}, doi = {10.1186/s12880-015-0068-x}
}""",
    "kirillov2019panoptic": """@inproceedings{kirillov2019panoptic,
  author = {Kirillov, Alexander and He, Kaiming and Girshick, Ross and Rother, Carsten and Doll{\\'a}r, Piotr},
  title = {Panoptic Segmentation},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages = {9404--9413}, year = {2019}
}""",
}

#: Who a metric's definition comes from; a convention's reference library; a test or correction's paper.
METRIC_PAPERS = {"dice": "dice1945", "iou": "jaccard1912", "hausdorff": "huttenlocher1993", "hd95": "huttenlocher1993",
                 "nsd": "nikolov2021", "accuracy": "staal2004ridge", "cldice": "shit2021cldice",
                 "betti0_error": "hu2019topology", "betti1_error": "hu2019topology",
                 "boundary_iou": "cheng2021boundary", "boundary_f1": "csurka2013", "mcc": "matthews1975",
                 "kappa": "cohen1960", "balanced_accuracy": "brodersen2010", "volume_similarity": "taha2015",
                 "object_f1": "sirinukunwattana2017gland", "object_dice": "sirinukunwattana2017gland",
                 "object_hausdorff": "sirinukunwattana2017gland", "aji": "kumar2017dataset",
                 "pq": "kirillov2019panoptic", "sq": "kirillov2019panoptic", "rq": "kirillov2019panoptic"}
#: Metric papers that are a dataset's own paper: their entry is the dataset's registry citation (one source).
DATASET_PAPERS = {"staal2004ridge": "drive", "sirinukunwattana2017gland": "glas", "kumar2017dataset": "monuseg"}
CONVENTION_PAPERS = {"surface-distance": "surface_distance", "monai": "cardoso2022monai", "medpy": "medpy"}
TEST_PAPERS = {"wilcoxon": "wilcoxon1945", "t": "student1908", "permutation": "good2005"}
CORRECTION_PAPERS = {"holm": "holm1979", "fdr_bh": "benjamini1995", "bonferroni": "dunn1961"}


def package_entry(version: str | None) -> str:
    """The package's BibTeX entry, at the version the results record.

    Examples
    --------
    >>> print(package_entry("0.1.0").splitlines()[0])
    @software{medseg_eval,
    """
    return (f"@software{{{PACKAGE_KEY},\n  author = {{{{medseg\\_eval developers}}}},\n"
            "  title = {medseg\\_eval: Reproducible Evaluation of 2D Medical Image Segmentation},\n"
            f"  version = {{{version or 'unknown'}}},\n  url = {{{PACKAGE_URL}}},\n  license = {{Apache-2.0}}\n}}")


def dataset_entry(dataset: str | None) -> tuple[str, str] | None:
    """``(key, BibTeX)`` of a registered dataset's paper (its registry entry's citation), else ``None``.

    Examples
    --------
    >>> dataset_entry("kvasir-seg")[0]
    'jha2020kvasir'
    """
    if not dataset:
        return None
    from ..datasets import get_spec
    from ..datasets.errors import DatasetError

    try:
        citation = get_spec(dataset).citation.strip()
    except DatasetError:
        return None
    match = re.match(r"@\w+\{([^,\s]+),", citation)
    return (match.group(1), citation) if match else None


def entries(keys: list[str], *, version: str | None, dataset: tuple[str, str] | None = None) -> list[str]:
    """The BibTeX entries of ``keys`` (each once, in order): the package's at ``version``, the dataset's, the papers'
    (a dataset's own paper, e.g. GlaS's for the object metrics, from its registry entry).

    Examples
    --------
    >>> [e.split(",")[0] for e in entries(["medseg_eval", "dice1945", "dice1945", "kumar2017dataset"], version="0.1.0")]
    ['@software{medseg_eval', '@article{dice1945', '@article{kumar2017dataset']
    """
    out = []
    for key in dict.fromkeys(keys):
        if key == PACKAGE_KEY:
            out.append(package_entry(version))
        elif dataset is not None and key == dataset[0]:
            out.append(dataset[1])
        elif key in REFERENCES:
            out.append(REFERENCES[key])
        elif key in DATASET_PAPERS and (paper := dataset_entry(DATASET_PAPERS[key])) is not None:
            out.append(paper[1])
    return out
