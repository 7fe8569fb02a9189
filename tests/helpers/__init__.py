"""Helpers for the live tests."""
