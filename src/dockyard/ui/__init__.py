"""What dockyard shows people: the console, progress events and their live display."""
