"""Watermarking schemes: one module each, built by Hydra from `configs/scheme/<name>.yaml`."""
