"""The query domain: identity (canonical form, sid), Lucene parsing, limits, fields named."""
