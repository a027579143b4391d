"""Backtests: replay price history through risk + plan on simulated positions."""
