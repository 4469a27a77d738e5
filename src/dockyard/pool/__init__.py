"""The host's pool of berths: file-locked slots, lease records, port blocks, engines, what is orphaned."""
