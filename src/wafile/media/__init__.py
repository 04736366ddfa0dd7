"""Media: ingest (stream, hash, sniff), the blob store, remote fetch."""
