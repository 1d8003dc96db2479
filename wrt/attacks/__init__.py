"""Removal attacks: one module per family, built by Hydra from `configs/attack/<name>.yaml`."""
