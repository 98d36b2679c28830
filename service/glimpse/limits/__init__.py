"""Limits on what one client may ask for: who the client is (`client_ip`), how often it may call
(`rate`: token buckets in memory or in Redis) and how many image bytes may be kept (`quota`)."""
