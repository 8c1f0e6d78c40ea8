"""faiss and torch share the OpenMP runtime: a search must not leave the language model on one thread."""

import numpy as np
import torch

from ragspec.retrieval.dense import DenseIndex


def test_search_restores_torch_threads():
    before = torch.get_num_threads()
    index = DenseIndex.empty(4)
    vectors = np.eye(4, dtype=np.float32)
    index.add(np.arange(4), vectors)
    ids, _ = index.search(vectors[2], 2)
    assert ids[0] == 2
    assert torch.get_num_threads() == before
