"""Figures (matplotlib) and the run report; kept out of the core model code."""
