"""The tailor's HTTP face: the routes (api), what every streaming endpoint does around its stream (endpoint), the connections (site)."""
