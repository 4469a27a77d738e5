"""The Docker engine: endpoints and clients, images, labels, where this process runs."""
