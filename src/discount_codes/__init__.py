"""discount-codes: discount codes for a brand marketplace."""

__version__ = "0.1.0"
