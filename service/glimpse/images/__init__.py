"""Image bytes: validation and normalisation, storage backends (local disk, GCS), signed URLs, uploads."""
