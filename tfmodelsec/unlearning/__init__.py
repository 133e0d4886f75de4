"""Machine unlearning: checkpoint chain, DeepObliviate, SISA."""
