"""The receiver: provider deliveries in, GitRepo status patches out."""
