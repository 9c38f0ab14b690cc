"""Training of the pneumonia chest X-ray classifier (needs the ``train`` extra: torch)."""
