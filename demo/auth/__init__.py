"""The demo's auth service: accounts, passwords and signed bearer tokens."""
