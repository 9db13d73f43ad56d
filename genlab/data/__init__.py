"""Data for the book: image datasets, 2-D toy distributions and offline text corpora.

* :mod:`genlab.data.images`  MNIST / Fashion-MNIST in memory (its docstring: where the files
  live, verified downloads, the offline fallback, value ranges, use as a PyTorch dataset);
* :mod:`genlab.data.toy2d`   2-D Gaussian mixtures and other toy distributions;
* :mod:`genlab.data.corpora` offline text corpora and a character tokenizer.

See: book/00_front/first_example.ipynb.
"""

from genlab.data.corpora import (
    CharTokenizer,
    book_text_corpus,
    corpus_fingerprint,
    python_source_corpus,
    stdlib_docstring_corpus,
    train_val_split,
)
from genlab.data.images import (
    DATASETS,
    UNLABELLED,
    ChecksumError,
    DatasetError,
    ImageData,
    binarize,
    data_dir,
    download_file,
    iterate_minibatches,
    load_fashion_mnist,
    load_images,
    load_mnist,
    read_idx,
    shown_path,
    to_unit_range,
    value_range_hint,
)
from genlab.data.toy2d import ToyDistribution, grid25, ring8, spiral, toy_distribution, two_moons

__all__ = [
    "DATASETS", "UNLABELLED", "CharTokenizer", "ChecksumError", "DatasetError", "ImageData", "ToyDistribution",
    "binarize",
    "book_text_corpus", "corpus_fingerprint", "data_dir", "download_file", "grid25",
    "iterate_minibatches", "load_fashion_mnist", "load_images", "load_mnist", "python_source_corpus",
    "read_idx", "ring8", "shown_path", "spiral", "stdlib_docstring_corpus", "to_unit_range", "toy_distribution",
    "train_val_split", "two_moons", "value_range_hint",
]
