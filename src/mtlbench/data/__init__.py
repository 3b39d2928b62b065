"""Data: sources (download, verify, convert) and tasks (tensors and labels for training)."""
