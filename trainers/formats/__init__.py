"""Dataset formats: the `FORMATS` registry and one module per format (docs/design.md).

    base.py        FORMATS, DatasetFormat (and the path every format's data takes through
                   trainers.data.load_poses), Record, Annotations, Source, DataError and
                   carved val splits (`read_annotations`)
    helpers.py     the readers' helpers (JSON entries, clean joints, box from joints)
    detect.py      which format a path holds (`resolve`), the Source of a data string
    lsp.py         lsp and lspet (joints.mat)
    mpii.py        mpii (JSON list or h5)
    coco.py        coco (person keypoints JSON)
    synthetic.py   synthetic (generated people, no files)

Importing this package registers the built-in formats, in the order detection asks them.
"""

from trainers.formats.base import (
    CARVED_SPLITS,
    FORMATS,
    VAL_FRACTION,
    Annotations,
    DataError,
    DatasetFormat,
    FormatRegistry,
    Record,
    Source,
    carve_val,
    carves_val,
    read_annotations,
)
from trainers.formats.detect import detect_format, detection_order, locate, open_source, resolve
from trainers.formats.helpers import (
    bad_record,
    box_from_joints,
    clean_joints,
    first_char,
    joint_distance,
    load_json,
    read_entries,
)

# Registration order is detection order and the order error messages list the formats in: lsp
# (and its alias lspet), mpii, coco, then synthetic. Sorting these imports would change it.
# isort: off
from trainers.formats.lsp import LspFormat
from trainers.formats.mpii import MpiiFormat
from trainers.formats.coco import CocoFormat
from trainers.formats.synthetic import SyntheticFormat
# isort: on

__all__ = [
    "CARVED_SPLITS",
    "FORMATS",
    "VAL_FRACTION",
    "Annotations",
    "CocoFormat",
    "DataError",
    "DatasetFormat",
    "FormatRegistry",
    "LspFormat",
    "MpiiFormat",
    "Record",
    "Source",
    "SyntheticFormat",
    "bad_record",
    "box_from_joints",
    "carve_val",
    "carves_val",
    "clean_joints",
    "detect_format",
    "detection_order",
    "first_char",
    "joint_distance",
    "load_json",
    "locate",
    "open_source",
    "read_annotations",
    "read_entries",
    "resolve",
]
