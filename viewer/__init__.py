"""The viewer: the page shell, its small JS, and the deck built with pydeck."""
