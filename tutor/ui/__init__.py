"""Everything that draws on a terminal: rich renderables and interactive loops."""
