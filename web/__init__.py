"""The HTTP front: the app factory, auth, error mapping, and one blueprint package per dialect."""
