"""The demo: seeds the program of the source application and four months of activity."""
