"""HTTP transport: pooled client, timeouts, SSE decoding, the sync API's loop thread."""
