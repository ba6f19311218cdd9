"""Load data sets for an audit: built-ins, ``.npz`` arrays, CSV and parquet tables.

:func:`load_dataset` validates the input once and returns a :class:`Dataset` holding encoded
features, labels, record IDs and content fingerprints (see :mod:`miaudit.data.fingerprint`).

Examples
--------
>>> from miaudit.data import BUILTIN_DATASETS, load_dataset
>>> sorted(BUILTIN_DATASETS)
['breast_cancer', 'digits', 'wine']
>>> load_dataset("digits").X.shape
(1797, 64)
"""

from miaudit.data.dataset import MIN_RECORDS, Dataset
from miaudit.data.fingerprint import (
    FINGERPRINT_VERSION,
    array_record_fingerprints,
    dataset_fingerprint,
    table_record_fingerprints,
)
from miaudit.data.loaders import BUILTIN_DATASETS, SUPPORTED_EXTENSIONS, load_dataset
from miaudit.data.tables import MAX_CATEGORIES, MISSING_MARKERS, MISSING_TOKEN

__all__ = [
    "BUILTIN_DATASETS",
    "FINGERPRINT_VERSION",
    "MAX_CATEGORIES",
    "MIN_RECORDS",
    "MISSING_MARKERS",
    "MISSING_TOKEN",
    "SUPPORTED_EXTENSIONS",
    "Dataset",
    "array_record_fingerprints",
    "dataset_fingerprint",
    "load_dataset",
    "table_record_fingerprints",
]
