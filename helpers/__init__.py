"""Helpers for the image generative models course kit."""
