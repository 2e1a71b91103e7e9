"""Data shipped with gpubench (the offline MNIST set)."""
