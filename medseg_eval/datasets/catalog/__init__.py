"""One module per dataset: its :class:`~medseg_eval.datasets.registry.DatasetSpec` and its builder."""

from . import busi, camus, cvc_clinicdb, drive, glas, isic2018, kvasir_seg, monuseg, neopolyp, synthetic_lesions  # noqa: F401
