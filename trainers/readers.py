"""Moved to the `trainers.formats` package (one module per format); no logic lives here.

This module only re-exports the old names so that code not yet moved (search/commands/predict.py,
on its way to cli/ and trainers/infer.py) keeps importing. New code imports `trainers.formats`.
"""
from trainers.formats import *  # noqa: F401,F403
from trainers.formats.coco import COCO_FLIP, COCO_JOINTS, COCO_LIMBS  # noqa: F401
from trainers.formats.lsp import LSP_FLIP, LSP_JOINTS, LSP_LIMBS, TORSO_PER_EXTENT  # noqa: F401
from trainers.formats.mpii import HEAD_PER_SEGMENT, MPII_FLIP, MPII_JOINTS, MPII_LIMBS  # noqa: F401
