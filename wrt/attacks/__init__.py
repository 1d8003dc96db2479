"""Removal attacks: one module per family, built by Hydra from `wrt/configs/attack/<name>.yaml`."""
