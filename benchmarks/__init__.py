"""Benchmarks of discount-codes: every figure measured against a raw baseline of the same
work in the same run (see benchmarks/README.md). Measured, not asserted in CI."""
