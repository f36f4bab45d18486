"""indices: frailty measures and composite indices from raw extracts, published as versioned Parquet."""

__version__ = "0.1.0"
