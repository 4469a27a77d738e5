"""The Docker engine: endpoints and clients, base images and builds, labels, where this process runs."""
