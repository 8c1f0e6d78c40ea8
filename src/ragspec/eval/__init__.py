"""Evaluation: answer quality (EM/F1), retrieval recall and datasets in the shared format."""
