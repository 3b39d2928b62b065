"""Training: protocols, the fit loop with Keras-style early stopping, and multi-seed runs."""
