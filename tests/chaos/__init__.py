"""The chaos suite: dockyard sessions killed, faulted and run side by side; nothing may leak."""
