"""Watermarking schemes: one module each, built by Hydra from `wrt/configs/scheme/<name>.yaml`."""
