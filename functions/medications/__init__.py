"""Medication orders: the formulary of psychiatric ingredients and the prescribing rules."""
