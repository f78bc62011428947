"""Media storage: local files (default) or any S3-compatible store."""
