"""The sync-spec model: YAML in, validated attrs objects out, or readable errors naming file, path and line."""
