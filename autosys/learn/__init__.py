"""The shared training/inference loop: datasets from storage, one model interface, retraining."""
