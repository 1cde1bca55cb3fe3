"""What runs beside an editor: the MCP server and its tools, the index watcher, and the background KV refresh."""
