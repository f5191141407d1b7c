"""Evaluation: every kind of model on held-out pairs (`compute`), then tables (`report`)."""
