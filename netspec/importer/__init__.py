"""Printed PyTorch modules (and live ones) to specs."""
