"""The tailor's HTTP face: the routes and the request around a stream (api), the connections (site)."""
