"""Load data sets for an audit: built-ins, ``.npz`` arrays, CSV and parquet tables, and texts.

:func:`load_dataset` validates the input once and returns a :class:`Dataset` holding encoded
features, labels, record IDs and content fingerprints (see :mod:`miaudit.data.fingerprint`).
:func:`load_texts` does the same for the documents of a language-model audit and returns a
:class:`TextDataset` (see :mod:`miaudit.data.text`).

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
from miaudit.data.text import MEMBER_VALUES, TEXT_EXTENSIONS, load_texts
from miaudit.data.text_dataset import (
    TextDataset,
    set_aside_texts,
    split_texts,
    text_fingerprints,
)

__all__ = [
    "BUILTIN_DATASETS",
    "FINGERPRINT_VERSION",
    "MAX_CATEGORIES",
    "MEMBER_VALUES",
    "MIN_RECORDS",
    "MISSING_MARKERS",
    "MISSING_TOKEN",
    "SUPPORTED_EXTENSIONS",
    "TEXT_EXTENSIONS",
    "Dataset",
    "TextDataset",
    "array_record_fingerprints",
    "dataset_fingerprint",
    "load_dataset",
    "load_texts",
    "set_aside_texts",
    "split_texts",
    "table_record_fingerprints",
    "text_fingerprints",
]
